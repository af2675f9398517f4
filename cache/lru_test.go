package cache

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func TestNewRejectsBadSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, -1} {
		if _, err := New[string, int](size); !errors.Is(err, ErrSize) {
			t.Errorf("New(%d) err = %v, want ErrSize", size, err)
		}
	}
}

func TestGetHonoursPerEntryExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, err := New[string, int](10, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	c.Add("short", 1, clk.Now().Add(time.Second))
	c.Add("long", 2, clk.Now().Add(time.Hour))

	tests := []struct {
		advance time.Duration
		key     string
		want    int
		wantOK  bool
	}{
		{0, "short", 1, true},
		{999 * time.Millisecond, "short", 1, true},
		{time.Millisecond, "short", 0, false}, // exactly at expiry: gone
		{0, "long", 2, true},
		{time.Hour, "long", 0, false},
	}
	for _, tt := range tests {
		clk.Advance(tt.advance)
		got, ok := c.Get(tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("after +%v Get(%q) = %d, %v; want %d, %v", tt.advance, tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len() = %d after all entries expired and were read, want 0", n)
	}
}

func TestAddPastExpiryStoresNothing(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, _ := New[string, int](10, WithClock(clk.Now))
	c.Add("k", 1, clk.Now().Add(time.Minute))
	if evicted := c.Add("k", 2, clk.Now()); evicted {
		t.Errorf("Add with past expiry reported an eviction")
	}
	if v, ok := c.Get("k"); ok {
		t.Errorf("Get(k) = %d, true after Add with expiry now; want the old entry removed", v)
	}
}

func TestFarFutureExpiry(t *testing.T) {
	t.Parallel()
	c, _ := New[string, int](1)
	c.Add("k", 1, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, ok := c.Get("k"); !ok {
		t.Errorf("Get(k) missing for an expiry in year 9999")
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, _ := New[int, int](2, WithClock(clk.Now))
	exp := clk.Now().Add(time.Hour)
	c.Add(1, 1, exp)
	c.Add(2, 2, exp)
	c.Get(1) // within PromoteInterval of its Add: recency unchanged
	clk.Advance(PromoteInterval)
	c.Get(1) // 2 is now least recently used
	if evicted := c.Add(3, 3, exp); !evicted {
		t.Errorf("Add(3) on a full cache reported no eviction")
	}
	if _, ok := c.Get(2); ok {
		t.Errorf("Get(2) found the least recently used entry, want it evicted")
	}
	for _, k := range []int{1, 3} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("Get(%d) missing, want present", k)
		}
	}
}

func TestPromotionIsRateLimited(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, _ := New[int, int](2, WithClock(clk.Now))
	exp := clk.Now().Add(time.Hour)
	c.Add(1, 1, exp)
	c.Add(2, 2, exp)
	c.Get(1) // too soon after Add to move: 1 stays least recently used
	c.Add(3, 3, exp)
	if _, ok := c.Get(1); ok {
		t.Errorf("Get(1) found an entry that a hit within PromoteInterval should not have promoted")
	}
}

func TestRemoveAndPurge(t *testing.T) {
	t.Parallel()
	c, _ := New[string, int](4)
	exp := time.Now().Add(time.Hour)
	c.Add("a", 1, exp)
	c.Add("b", 2, exp)
	if !c.Remove("a") || c.Remove("a") {
		t.Errorf("Remove(a) twice: want true then false")
	}
	c.Purge()
	if n := c.Len(); n != 0 {
		t.Errorf("Len() after Purge = %d, want 0", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c, _ := New[int, int](64)
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := (g*1000 + i) % 100
				c.Add(k, k, exp)
				if v, ok := c.Get(k); ok && v != k {
					t.Errorf("Get(%d) = %d", k, v)
				}
				if i%10 == 0 {
					c.Remove(k)
				}
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 64 {
		t.Errorf("Len() = %d, exceeds size 64", n)
	}
}

func BenchmarkGet(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			c, _ := New[[32]byte, *int](size)
			exp := time.Now().Add(time.Hour)
			keys := make([][32]byte, size)
			for i := range keys {
				keys[i][0], keys[i][1], keys[i][2] = byte(i), byte(i>>8), byte(i>>16)
				v := i
				c.Add(keys[i], &v, exp)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Get(keys[i%size])
				i++
			}
		})
	}
}

func BenchmarkAdd(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			c, _ := New[int, int](size)
			exp := time.Now().Add(time.Hour)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Add(i, i, exp) // 2x size distinct keys: half the adds evict
				i = (i + 1) % (2 * size)
			}
		})
	}
}

func BenchmarkGetParallel(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			c, _ := New[int, int](size)
			exp := time.Now().Add(time.Hour)
			for i := range size {
				c.Add(i, i, exp)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c.Get(i % size)
					i += 7
				}
			})
		})
	}
}

func TestGetAtUsesTheGivenTime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, _ := New[string, int](2, WithClock(clk.Now))
	c.Add("k", 1, clk.Now().Add(time.Minute))
	if _, ok := c.GetAt("k", clk.Now().Add(time.Minute)); ok {
		t.Errorf("GetAt(k, expiry) found the entry; want it expired at the given time")
	}
}

func TestShardedCacheHoldsItsSize(t *testing.T) {
	t.Parallel()
	c, _ := New[int, int](ShardThreshold * 4)
	exp := time.Now().Add(time.Hour)
	for i := range ShardThreshold * 8 {
		c.Add(i, i, exp)
	}
	if n := c.Len(); n < ShardThreshold*4*9/10 || n > ShardThreshold*4+Shards {
		t.Errorf("Len() = %d after overfilling a cache of %d: want about its size", n, ShardThreshold*4)
	}
	hits := 0
	for i := ShardThreshold * 7; i < ShardThreshold*8; i++ { // the most recent keys stay
		if v, ok := c.Get(i); ok && v == i {
			hits++
		}
	}
	if hits != ShardThreshold {
		t.Errorf("%d of the %d most recent keys found, want all", hits, ShardThreshold)
	}
}

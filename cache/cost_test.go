package cache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/cache"
)

func byteLen(b []byte) int64 { return int64(len(b)) }

func TestMaxCostBoundsTheTotal(t *testing.T) {
	t.Parallel()
	for _, size := range []int{16, cache.ShardThreshold * 4} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			t.Parallel()
			const max = 1 << 20
			c, err := cache.New[int, []byte](size, cache.WithMaxCost(max, byteLen))
			if err != nil {
				t.Fatal(err)
			}
			exp := time.Now().Add(time.Hour)
			for i := range 10 * size {
				c.Add(i, make([]byte, 10_000), exp) // 100x the bound in total
				if got := c.Cost(); got > max {
					t.Fatalf("after %d adds: cost %d, over the bound %d", i+1, got, max)
				}
			}
			if c.Len() == 0 || c.Cost() == 0 {
				t.Errorf("Len %d, Cost %d: want the cache to keep what fits", c.Len(), c.Cost())
			}
		})
	}
}

func TestMaxCostAccountsReplaceRemoveAndPurge(t *testing.T) {
	t.Parallel()
	c, err := cache.New[string, []byte](8, cache.WithMaxCost(1000, byteLen))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	c.Add("a", make([]byte, 300), exp)
	c.Add("a", make([]byte, 100), exp) // replaced: 100, not 400
	c.Add("b", make([]byte, 200), exp)
	if got := c.Cost(); got != 300 {
		t.Errorf("after replacing a: cost %d, want 300", got)
	}
	c.Remove("b")
	if got := c.Cost(); got != 100 {
		t.Errorf("after Remove(b): cost %d, want 100", got)
	}
	if evicted := c.Add("big", make([]byte, 1001), exp); evicted {
		t.Error("a value over the whole bound evicted entries")
	}
	if _, ok := c.Get("big"); ok {
		t.Error("a value over the whole bound was stored")
	}
	if _, ok := c.Get("a"); !ok {
		t.Error("a value over the bound pushed out an entry that fits")
	}
	c.Add("c", make([]byte, 950), exp) // evicts a
	if _, ok := c.Get("a"); ok || c.Cost() != 950 {
		t.Errorf("after adding 950 to 100 under 1000: a kept = %v, cost %d; want a evicted, 950", ok, c.Cost())
	}
	c.Purge()
	if got := c.Cost(); got != 0 {
		t.Errorf("after Purge: cost %d, want 0", got)
	}
}

func TestMaxCostExpiredEntriesGiveBack(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := cache.New[string, []byte](8, cache.WithMaxCost(1000, byteLen), cache.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	c.Add("a", make([]byte, 500), now.Add(time.Second))
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if _, ok := c.Get("a"); ok {
		t.Fatal("expired entry returned")
	}
	if got := c.Cost(); got != 0 {
		t.Errorf("after an expired entry was dropped: cost %d, want 0", got)
	}
}

func TestMaxCostValidated(t *testing.T) {
	t.Parallel()
	for _, max := range []int64{0, -1} {
		if _, err := cache.New[int, []byte](8, cache.WithMaxCost(max, byteLen)); err == nil {
			t.Errorf("WithMaxCost(%d): no error", max)
		}
	}
}

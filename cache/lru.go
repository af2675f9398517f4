package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ErrSize is returned by [New] for a size that is not positive.
var ErrSize = errors.New("cache: size must be positive")

// maxTime is the last instant UnixNano can represent.
var maxTime = time.Unix(0, math.MaxInt64)

// Option configures an [LRU].
type Option func(*config)

type config struct {
	now     func() time.Time
	maxCost int64
	cost    func(any) int64
}

// WithClock sets the clock used to decide whether an entry has expired.
// Default: [time.Now]. Tests use it to move time without sleeping.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithMaxCost bounds the entries' total cost, besides their number: cost
// tells what a value costs (its size in bytes, say), and an Add that takes
// the total past max evicts the least recently used entries until it fits.
// The bound is on the whole cache, sharded or not (in a sharded LRU the
// entries evicted for cost are the least recently used of their shard,
// starting with the shards after the new entry's); a value that costs more
// than max is not stored at all. Default: no bound but the size. cost must be safe for concurrent use and give the same answer
// for the same value every time.
func WithMaxCost[V any](max int64, cost func(V) int64) Option {
	return func(c *config) {
		c.maxCost = max
		c.cost = func(v any) int64 { return cost(v.(V)) }
	}
}

// PromoteInterval is how often, at most, a hit refreshes an entry's place in
// the eviction order. Between refreshes a hit takes only a read lock, so
// concurrent hits on a hot entry never wait for each other; eviction order is
// least recently used to within this interval.
const PromoteInterval = time.Second

// entry is stored by value in the shard's list node: a hit follows no
// pointer beyond the node.
type entry[V any] struct {
	val      V
	expires  int64 // Unix nanoseconds: 8 bytes, not a 24-byte time.Time
	promoted int64 // when it was added or a hit last moved it to the front
}

// Caches of ShardThreshold entries or more are split into Shards shards.
const (
	ShardThreshold = 1024
	Shards         = 16
)

// LRU is a fixed-size least-recently-used cache whose entries each expire at
// their own time. An entry is returned by [LRU.Get] strictly before its expiry
// and never at or after it.
//
// An LRU of [ShardThreshold] entries or more is split into [Shards] shards by
// key, each an LRU of its own with its own lock, so that the writes of one
// shard never stall readers of the others; eviction is then least recently
// used within a shard. Smaller caches are one exact LRU.
//
// The zero value is not usable; create one with [New]. An LRU is safe for
// concurrent use by multiple goroutines.
type LRU[K comparable, V any] struct {
	now    func() time.Time
	seed   maphash.Seed
	shards []shard[K, V]

	maxCost int64         // with WithMaxCost
	cost    func(V) int64 // nil without a cost bound
	used    atomic.Int64  // total cost of the entries
}

type shard[K comparable, V any] struct {
	mu  sync.RWMutex // guards lru; hits hold it for reading
	lru *simplelru.LRU[K, entry[V]]
}

func (c *LRU[K, V]) shard(key K) *shard[K, V] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.Comparable(c.seed, key)%uint64(len(c.shards))]
}

// New returns an LRU that holds at most size entries. It returns [ErrSize]
// when size is not positive, and an error for a cost bound that is not
// positive or has no cost function.
func New[K comparable, V any](size int, opts ...Option) (*LRU[K, V], error) {
	if size <= 0 {
		return nil, ErrSize
	}
	cfg := config{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.cost != nil && cfg.maxCost <= 0 {
		return nil, fmt.Errorf("cache: max cost %d must be positive", cfg.maxCost)
	}
	n := 1
	if size >= ShardThreshold {
		n = Shards
	}
	c := &LRU[K, V]{now: cfg.now, seed: maphash.MakeSeed(), shards: make([]shard[K, V], n)}
	if cfg.cost != nil {
		c.maxCost = cfg.maxCost
		c.cost = func(v V) int64 { return cfg.cost(v) }
	}
	for i := range c.shards {
		var onEvict simplelru.EvictCallback[K, entry[V]]
		if c.cost != nil {
			onEvict = func(_ K, e entry[V]) { c.used.Add(-c.cost(e.val)) } // under the shard's lock
		}
		l, err := simplelru.NewLRU[K, entry[V]]((size+n-1)/n, onEvict)
		if err != nil {
			return nil, err
		}
		c.shards[i].lru = l
	}
	return c, nil
}

// Get returns the value stored under key and marks it recently used (see
// [PromoteInterval]). It reports false when there is no entry or the entry
// has expired; an expired entry is removed.
func (c *LRU[K, V]) Get(key K) (v V, ok bool) {
	return c.GetAt(key, c.now())
}

// GetAt is [LRU.Get] at the given time, for callers that already read the
// clock; the LRU's own clock is not consulted.
func (c *LRU[K, V]) GetAt(key K, at time.Time) (v V, ok bool) {
	now := at.UnixNano()
	sh := c.shard(key)
	sh.mu.RLock()
	e, ok := sh.lru.Peek(key)
	sh.mu.RUnlock()
	if !ok {
		return v, false
	}
	if now >= e.expires {
		sh.mu.Lock()
		// Unless an Add has replaced it with a live entry meanwhile.
		if cur, ok := sh.lru.Peek(key); ok && now >= cur.expires {
			sh.lru.Remove(key)
		}
		sh.mu.Unlock()
		return v, false
	}
	if now-e.promoted >= int64(PromoteInterval) {
		sh.mu.Lock()
		// Unless another hit promoted it, or an Add replaced it, meanwhile.
		if cur, ok := sh.lru.Peek(key); ok && now-cur.promoted >= int64(PromoteInterval) {
			cur.promoted = now
			sh.lru.Add(key, cur) // stores it and moves it to the front
		}
		sh.mu.Unlock()
	}
	return e.val, true
}

// Add stores value under key until expires, replacing any previous entry and
// evicting the least recently used entries when the cache is full (by count,
// or by cost with [WithMaxCost]). It reports whether an entry was evicted.
// An expiry that is not in the future, or a value that costs more than the
// whole cost bound, stores nothing and removes any previous entry for key.
func (c *LRU[K, V]) Add(key K, value V, expires time.Time) (evicted bool) {
	if c.cost == nil {
		return c.add(key, value, expires)
	}
	if c.add(key, value, expires) {
		evicted = true
	}
	return c.shrink(key) || evicted
}

func (c *LRU[K, V]) add(key K, value V, expires time.Time) (evicted bool) {
	now := c.now()
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !now.Before(expires) {
		sh.lru.Remove(key)
		return false
	}
	e := entry[V]{val: value, expires: math.MaxInt64, promoted: now.UnixNano()} // beyond 2262 UnixNano is undefined: clamp
	if expires.Before(maxTime) {
		e.expires = expires.UnixNano()
	}
	if c.cost == nil {
		return sh.lru.Add(key, e)
	}
	cost := c.cost(value)
	if cost > c.maxCost {
		sh.lru.Remove(key)
		return false
	}
	if old, ok := sh.lru.Peek(key); ok {
		c.used.Add(-c.cost(old.val)) // Add replaces without the callback
	}
	c.used.Add(cost)
	return sh.lru.Add(key, e)
}

// shrink evicts least recently used entries, shard by shard, until the
// total cost is within the bound, starting after key's shard and sparing
// key's own entry. It takes one shard's lock at a time.
func (c *LRU[K, V]) shrink(key K) (evicted bool) {
	n := len(c.shards)
	own := 0
	if n > 1 {
		own = int(maphash.Comparable(c.seed, key) % uint64(n))
	}
	for round := 0; round < 2 && c.used.Load() > c.maxCost; round++ {
		for i := 1; i <= n && c.used.Load() > c.maxCost; i++ {
			idx := (own + i) % n
			sh := &c.shards[idx]
			sh.mu.Lock()
			for c.used.Load() > c.maxCost {
				if idx == own {
					if k, _, ok := sh.lru.GetOldest(); !ok || k == key {
						break // spare the entry just added
					}
				}
				if _, _, ok := sh.lru.RemoveOldest(); !ok {
					break
				}
				evicted = true
			}
			sh.mu.Unlock()
		}
	}
	return evicted
}

// Cost returns the total cost of the entries, including expired entries not
// yet removed; 0 without [WithMaxCost].
func (c *LRU[K, V]) Cost() int64 { return c.used.Load() }

// Remove deletes the entry for key, if any, and reports whether there was one.
func (c *LRU[K, V]) Remove(key K) bool {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.lru.Remove(key)
}

// Len returns the number of entries, including expired entries not yet removed.
func (c *LRU[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += sh.lru.Len()
		sh.mu.RUnlock()
	}
	return n
}

// Purge removes every entry.
func (c *LRU[K, V]) Purge() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.lru.Purge()
		sh.mu.Unlock()
	}
}

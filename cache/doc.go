// Package cache provides a size-bounded LRU cache in which every entry carries
// its own expiry.
//
// It exists because token introspection results must never outlive the token
// they describe: each entry expires at a time chosen when it is added (for an
// access token, the earlier of its exp claim and a maximum age), while the
// least recently used entry is evicted when the cache is full. The
// expirable package of github.com/hashicorp/golang-lru/v2 has one TTL for the
// whole cache, which cannot express that; this package builds on its simplelru
// instead.
//
//	c, err := cache.New[string, int](10_000)
//	c.Add("k", 1, time.Now().Add(time.Minute))
//	v, ok := c.Get("k")
//
// # Caching
//
// Hits take a read lock and refresh an entry's recency at most once per
// [PromoteInterval], so concurrent hits on hot entries do not serialize; the
// eviction order is least recently used to within that interval. Caches of
// [ShardThreshold] entries or more are split into [Shards] shards with a lock
// each, and evict least recently used within a shard.
//
// Expiry is checked lazily: [LRU.Get] reports an expired entry as missing and
// removes it. No goroutine runs in the background, so an LRU needs no Close.
// Expired entries that are never asked for again are dropped by LRU eviction.
//
// # Security
//
// The cache stores keys as given. Callers caching anything derived from a
// credential MUST key it by a digest of the credential, never the credential
// itself, so that a heap dump does not reveal it.
package cache

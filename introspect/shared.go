package introspect

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// SharedCache is a second-level cache that an API's replicas share, such as
// the Redis one in module github.com/tokenguard/tokenguard/redis. A [Client]
// asks it on a miss of its own LRU, inside the singleflight that also covers
// the introspection, and fills it after each introspection.
//
// Implementations must be safe for concurrent use and bound every call in
// time. A miss is (zero, false, nil); an error means the shared cache could
// not be asked, and the Client carries on without it: it never fails a
// request.
type SharedCache interface {
	Lookup(ctx context.Context, token string) (SharedEntry, bool, error)
	Store(ctx context.Context, token string, e SharedEntry) error
}

// SharedEntry is one cached introspection answer as replicas share it.
type SharedEntry struct {
	Body    []byte    // the response as the server sent it
	Filled  time.Time // when it was introspected
	Fresh   time.Time // served without asking the server until then
	Expires time.Time // kept until then, at most: Fresh, or later for WithStaleIfError
}

// SharedInvalidator is implemented by shared caches that tell the other
// replicas about invalidations (rediscache does, over Redis pub/sub). With
// one configured, [Client.Invalidate] and [Client.InvalidateSubject] reach
// every replica; the replicas apply what they hear with
// [Client.InvalidateCacheKey] and [Client.InvalidateSubjectAt], which act
// locally only. Errors are the implementation's to report: invalidation
// never fails locally.
type SharedInvalidator interface {
	InvalidateShared(ctx context.Context, key [sha256.Size]byte, token string) error
	InvalidateSubjectShared(ctx context.Context, subject string, at time.Time) error
}

// WithSharedCache adds a second-level cache shared between replicas.
// Default: none.
func WithSharedCache(sc SharedCache) Option { return func(c *config) { c.shared = sc } }

// CacheKey returns the key under which the Client caches token's result:
// SHA-256 of the token. Replicas exchange keys, never tokens.
func (c *Client) CacheKey(token string) [sha256.Size]byte { return c.key(token) }

// InvalidateCacheKey drops the cached result with that key in this process
// only, as another replica asks through a [SharedInvalidator].
func (c *Client) InvalidateCacheKey(key [sha256.Size]byte) {
	c.metrics.Invalidated(context.Background(), telemetry.Token)
	if c.cache != nil {
		c.cache.Remove(key)
		if c.neg != nil {
			c.neg.Remove(key)
		}
	}
}

// InvalidateSubject makes every result cached for the subject (a user) until
// now count as stale, so that the user's next requests are introspected
// again: call it when a user is locked, deactivated or removed. With a
// [SharedInvalidator] it reaches every replica. It is kept for the longest
// time an entry can live (max TTL plus the stale-if-error window), then
// forgotten.
func (c *Client) InvalidateSubject(subject string) {
	now := c.cfg.now()
	c.InvalidateSubjectAt(subject, now)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateSubjectShared(context.Background(), subject, now)
	}
}

// InvalidateSubjectAt is [Client.InvalidateSubject] in this process only, for
// an invalidation made at the given time, as another replica reports it.
func (c *Client) InvalidateSubjectAt(subject string, at time.Time) {
	c.metrics.Invalidated(context.Background(), telemetry.Subject)
	now := c.cfg.now().UnixNano()
	keep := int64(c.cfg.maxTTL + c.cfg.staleIfErr)
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if c.revoked == nil {
		c.revoked = map[string]int64{}
	}
	if t := at.UnixNano(); t > c.revoked[subject] {
		c.revoked[subject] = t
	}
	for s, t := range c.revoked {
		if now-t > keep {
			delete(c.revoked, s)
		}
	}
	c.hasRevoked.Store(len(c.revoked) > 0)
}

// revokedSince reports whether the subject was invalidated at or after
// filled (Unix ns). It costs one atomic load while nothing was invalidated.
func (c *Client) revokedSince(subject string, filled int64) bool {
	if !c.hasRevoked.Load() {
		return false
	}
	c.revMu.RLock()
	at, ok := c.revoked[subject]
	c.revMu.RUnlock()
	return ok && filled <= at
}

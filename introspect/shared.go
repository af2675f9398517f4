package introspect

import (
	"context"
	"crypto/sha256"
	"time"
)

// SharedCache is a second-level cache that an API's replicas share, such as
// the Redis one in module github.com/tokenguard/tokenguard/rediscache. A [Client]
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
// [Client.InvalidateCacheKeyAt], [Client.InvalidateSubjectAt] and
// [Client.InvalidateTokenIDAt], which act locally only, and call
// [Client.Purge] when they may have missed some. Errors are the implementation's to report: invalidation
// never fails locally.
type SharedInvalidator interface {
	// InvalidateShared reports that token, whose cache key is key, was
	// invalidated at at.
	InvalidateShared(ctx context.Context, key [sha256.Size]byte, token string, at time.Time) error
	// InvalidateSubjectShared reports that every token of subject was
	// invalidated at at.
	InvalidateSubjectShared(ctx context.Context, subject string, at time.Time) error
	// InvalidateTokenIDShared reports that the token whose jti is jti was
	// invalidated at at.
	InvalidateTokenIDShared(ctx context.Context, jti string, at time.Time) error
}

// WithSharedCache adds a second-level cache shared between replicas.
// Default: none.
func WithSharedCache(sc SharedCache) Option { return func(c *config) { c.shared = sc } }

// CacheKey returns the key under which the Client caches token's result:
// SHA-256 of the token. Replicas exchange keys, never tokens.
func (c *Client) CacheKey(token string) [sha256.Size]byte { return c.key(token) }

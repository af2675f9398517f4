package rediscache

import (
	"log/slog"
	"time"
)

// Defaults for a [Cache].
const (
	DefaultPrefix  = "tokenguard:"
	DefaultTimeout = 50 * time.Millisecond
	// DefaultRevocationTTL is how long an invalidation (a token's
	// tombstone, a subject's or a token ID's record) is kept in Redis, and
	// the longest an entry is kept there: longer than any entry can live
	// with the default max TTL and a stale-if-error window.
	DefaultRevocationTTL = time.Hour
	// DefaultPingInterval is how long [Cache.Listen] waits on a silent
	// subscription before it pings Redis; a ping unanswered for as long
	// again counts as a lost subscription.
	DefaultPingInterval = 5 * time.Second
	// MinSecretSize is the shortest secret [New] accepts, in bytes.
	MinSecretSize = 32
)

// Option configures a [Cache].
type Option func(*Cache)

// WithPrefix sets the prefix of every Redis key and of the invalidation
// channel. Default: [DefaultPrefix].
func WithPrefix(p string) Option { return func(c *Cache) { c.prefix = p } }

// WithTimeout bounds every Redis call. Default: [DefaultTimeout] (50 ms).
func WithTimeout(d time.Duration) Option { return func(c *Cache) { c.timeout = d } }

// WithLogger sets where Redis failures, lost subscriptions and rejected
// messages are logged (at Warn). Default: [slog.Default]. Tokens, subjects
// and the secret are never logged.
func WithLogger(l *slog.Logger) Option { return func(c *Cache) { c.logger = l } }

// WithRevocationTTL sets how long an invalidation is remembered in Redis,
// which is also the longest an entry is kept there; it must exceed the max
// TTL plus any stale-if-error window. Default: [DefaultRevocationTTL].
func WithRevocationTTL(d time.Duration) Option { return func(c *Cache) { c.revTTL = d } }

// WithPingInterval sets how long [Cache.Listen] lets its subscription stay
// silent before it pings Redis. A connection that answers neither a message
// nor the ping within two intervals is dropped, the local cache purged, and
// the subscription made again. Default: [DefaultPingInterval].
func WithPingInterval(d time.Duration) Option { return func(c *Cache) { c.ping = d } }

// WithPreviousSecret lets a Cache read what replicas still running with
// old, the secret being rotated out, wrote: it reads entries under either
// secret, writes entries under the new one only, listens on both secrets'
// channels, and records and publishes every invalidation under both, so
// that replicas of either kind hear each other. Remove it once no replica
// runs with old any more. Do not use it for a secret that leaked; see the
// package documentation. Default: none.
func WithPreviousSecret(old []byte) Option {
	return func(c *Cache) { c.previous = append([]byte(nil), old...); c.hasPrevious = true }
}

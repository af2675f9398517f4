package rediscache

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/introspect"
)

// Defaults for a [Cache].
const (
	DefaultPrefix  = "tokenguard:"
	DefaultTimeout = 50 * time.Millisecond
	// DefaultRevocationTTL is how long a subject invalidation is kept in
	// Redis: longer than any entry can live with the default max TTL and a
	// stale-if-error window.
	DefaultRevocationTTL = time.Hour
)

const sealVersion = 1

// Option configures a [Cache].
type Option func(*Cache)

// WithPrefix sets the prefix of every Redis key and of the invalidation
// channel. Default: [DefaultPrefix].
func WithPrefix(p string) Option { return func(c *Cache) { c.prefix = p } }

// WithTimeout bounds every Redis call. Default: [DefaultTimeout] (50 ms).
func WithTimeout(d time.Duration) Option { return func(c *Cache) { c.timeout = d } }

// WithLogger sets where Redis failures are logged (at Warn). Default:
// [slog.Default]. Tokens are never logged.
func WithLogger(l *slog.Logger) Option { return func(c *Cache) { c.logger = l } }

// WithRevocationTTL sets how long a subject invalidation is remembered in
// Redis; it must exceed the max TTL plus any stale-if-error window. Default:
// [DefaultRevocationTTL].
func WithRevocationTTL(d time.Duration) Option { return func(c *Cache) { c.revTTL = d } }

// Cache is an [introspect.SharedCache] on Redis. It is safe for concurrent
// use; create one with [New].
type Cache struct {
	rdb       redis.UniversalClient
	namespace string
	prefix    string
	timeout   time.Duration
	revTTL    time.Duration
	logger    *slog.Logger
	errs      atomic.Int64
}

// New returns a Cache on rdb. The namespace separates APIs that share one
// Redis: replicas of one API MUST use the same value and other APIs another
// (use the issuer and the API's client ID), because introspection answers
// depend on who asks.
func New(rdb redis.UniversalClient, namespace string, opts ...Option) (*Cache, error) {
	if rdb == nil {
		return nil, errors.New("rediscache: nil Redis client")
	}
	if namespace == "" {
		return nil, errors.New("rediscache: empty namespace; use the issuer and the API's client ID")
	}
	c := &Cache{rdb: rdb, namespace: namespace, prefix: DefaultPrefix, timeout: DefaultTimeout, revTTL: DefaultRevocationTTL, logger: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	if c.timeout <= 0 || c.revTTL <= 0 {
		return nil, fmt.Errorf("rediscache: timeout %v and revocation TTL %v must be positive", c.timeout, c.revTTL)
	}
	return c, nil
}

// Errors returns how many Redis calls failed since the Cache was made.
func (c *Cache) Errors() int64 { return c.errs.Load() }

func (c *Cache) digest(kind byte, s string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(c.namespace))
	h.Write([]byte{0, kind, 0})
	h.Write([]byte(s))
	return [sha256.Size]byte(h.Sum(nil))
}

func (c *Cache) entryKey(token string) string {
	d := c.digest('t', token)
	return c.prefix + "e:" + hex.EncodeToString(d[:])
}

func (c *Cache) subjectKey(subject string) string {
	d := c.digest('s', subject)
	return c.prefix + "s:" + hex.EncodeToString(d[:])
}

func (c *Cache) channel() string { return c.prefix + "invalidate" }

// sealed is the plaintext of a stored entry.
type sealed struct {
	Filled  int64           `json:"f"`
	Fresh   int64           `json:"r"`
	Expires int64           `json:"x"`
	Body    json.RawMessage `json:"b"`
}

// aead derives the entry's AES-256-GCM key from the token.
func (c *Cache) aead(token string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(token), []byte(c.namespace), "tokenguard rediscache v1 entry", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (c *Cache) fail(op string, err error) {
	c.errs.Add(1)
	c.logger.Warn("tokenguard: redis shared cache unavailable; carrying on without it", "op", op, "error", err.Error())
}

// Lookup implements [introspect.SharedCache]. An entry that cannot be opened
// with token, or whose subject was invalidated after it was filled, is a miss.
func (c *Cache) Lookup(ctx context.Context, token string) (introspect.SharedEntry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	key := c.entryKey(token)
	raw, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return introspect.SharedEntry{}, false, nil
	}
	if err != nil {
		c.fail("get", err)
		return introspect.SharedEntry{}, false, err
	}
	s, err := c.open(token, key, raw)
	if err != nil {
		return introspect.SharedEntry{}, false, nil // tampered or foreign: a miss
	}
	var sub struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(s.Body, &sub) == nil && sub.Sub != "" {
		at, err := c.rdb.Get(ctx, c.subjectKey(sub.Sub)).Int64()
		switch {
		case err == nil && s.Filled <= at:
			return introspect.SharedEntry{}, false, nil // invalidated since it was filled
		case err != nil && !errors.Is(err, redis.Nil):
			c.fail("get subject", err)
			return introspect.SharedEntry{}, false, err
		}
	}
	return introspect.SharedEntry{Body: s.Body, Filled: time.Unix(0, s.Filled), Fresh: time.Unix(0, s.Fresh), Expires: time.Unix(0, s.Expires)}, true, nil
}

// Store implements [introspect.SharedCache]: the entry is sealed and kept
// until e.Expires.
func (c *Cache) Store(ctx context.Context, token string, e introspect.SharedEntry) error {
	ttl := time.Until(e.Expires)
	if ttl <= 0 {
		return nil
	}
	key := c.entryKey(token)
	plain, err := json.Marshal(sealed{Filled: e.Filled.UnixNano(), Fresh: e.Fresh.UnixNano(), Expires: e.Expires.UnixNano(), Body: e.Body})
	if err != nil {
		return err
	}
	aead, err := c.aead(token)
	if err != nil {
		return err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return err
	}
	out = aead.Seal(out, out[1:], plain, []byte(key))
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Set(ctx, key, out, ttl).Err(); err != nil {
		c.fail("set", err)
		return err
	}
	return nil
}

func (c *Cache) open(token, key string, raw []byte) (sealed, error) {
	var s sealed
	aead, err := c.aead(token)
	if err != nil {
		return s, err
	}
	if len(raw) < 1+aead.NonceSize() || raw[0] != sealVersion {
		return s, errors.New("rediscache: not a sealed entry")
	}
	plain, err := aead.Open(nil, raw[1:1+aead.NonceSize()], raw[1+aead.NonceSize():], []byte(key))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(plain, &s)
}

// InvalidateShared implements [introspect.SharedInvalidator]: it deletes
// token's entry and tells every replica's [Cache.Listen] to drop the key.
// The message carries the cache key, not the token.
func (c *Cache) InvalidateShared(ctx context.Context, key [sha256.Size]byte, token string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, c.entryKey(token))
		p.Publish(ctx, c.channel(), "k:"+hex.EncodeToString(key[:]))
		return nil
	})
	if err != nil {
		c.fail("invalidate", err)
	}
	return err
}

// InvalidateSubjectShared implements [introspect.SharedInvalidator]: it
// records the time in Redis, so that entries filled before it are refused
// by any replica that reads them later, and tells every replica's
// [Cache.Listen].
func (c *Cache) InvalidateSubjectShared(ctx context.Context, subject string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, c.subjectKey(subject), at.UnixNano(), c.revTTL)
		p.Publish(ctx, c.channel(), "s:"+strconv.FormatInt(at.UnixNano(), 10)+":"+subject)
		return nil
	})
	if err != nil {
		c.fail("invalidate subject", err)
	}
	return err
}

// Listen applies the invalidations that any replica publishes to client,
// until ctx is done; then it returns ctx's error. Run it in a goroutine of
// your own; go-redis reconnects the subscription when Redis comes back.
func (c *Cache) Listen(ctx context.Context, client *introspect.Client) error {
	sub := c.rdb.Subscribe(ctx, c.channel())
	defer sub.Close()
	msgs := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msg, ok := <-msgs:
			if !ok {
				return errors.New("rediscache: subscription closed")
			}
			c.apply(client, msg.Payload)
		}
	}
}

func (c *Cache) apply(client *introspect.Client, payload string) {
	switch {
	case strings.HasPrefix(payload, "k:"):
		b, err := hex.DecodeString(payload[2:])
		if err != nil || len(b) != sha256.Size {
			return
		}
		client.InvalidateCacheKey([sha256.Size]byte(b))
	case strings.HasPrefix(payload, "s:"):
		at, subject, ok := strings.Cut(payload[2:], ":")
		if ns, err := strconv.ParseInt(at, 10, 64); ok && err == nil && subject != "" {
			client.InvalidateSubjectAt(subject, time.Unix(0, ns))
		}
	}
}

var (
	_ introspect.SharedCache       = (*Cache)(nil)
	_ introspect.SharedInvalidator = (*Cache)(nil)
)

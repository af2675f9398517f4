package rediscache

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/introspect"
)

const (
	sealVersion = 2 // version 1 was sealed under a key derived from the token alone
	// maxSkew is how far in the future an entry's Filled may lie (another
	// replica's clock running ahead) before the entry is refused: a Filled
	// later than every invalidation would outrun them all.
	maxSkew = time.Minute
)

// Cache is an [introspect.SharedCache] and [introspect.SharedInvalidator]
// on Redis. It is safe for concurrent use; create one with [New].
type Cache struct {
	rdb         redis.UniversalClient
	prefix      string
	timeout     time.Duration
	revTTL      time.Duration
	ping        time.Duration
	logger      *slog.Logger
	previous    []byte // from WithPreviousSecret, until New derives from it
	hasPrevious bool

	rings []*keyring // the current secret's, then the previous one's

	errs      atomic.Int64
	rejected  atomic.Int64
	lastWarn  atomic.Int64 // Unix ns of the last "rejected" log line
	listening atomic.Bool
}

// keyring holds what one secret derives for one namespace. The secret itself
// is not kept.
type keyring struct {
	index   []byte      // HMAC key for the names of Redis keys
	seal    []byte      // HMAC key for entries' sealing keys
	msg     cipher.AEAD // seals pub/sub messages
	channel string
}

// New returns a Cache on rdb. The namespace separates APIs that share one
// Redis: replicas of one API MUST use the same value and other APIs another
// (use the issuer and the API's client ID), because introspection answers
// depend on who asks.
//
// The secret, at least [MinSecretSize] (32) random bytes, is shared by the
// replicas of one API and MUST NOT be stored in Redis: every key name,
// sealing key and message key is derived from it, so that whoever can read
// or write Redis without it can neither forge an entry or a message nor
// tell which token an entry belongs to. New keeps no reference to secret.
//
// rdb MUST respect context deadlines (go-redis's ContextTimeoutEnabled:
// true), so that [WithTimeout] bounds every call; New refuses a
// *redis.Client, *redis.ClusterClient or *redis.Ring without it.
func New(rdb redis.UniversalClient, namespace string, secret []byte, opts ...Option) (*Cache, error) {
	if rdb == nil {
		return nil, errors.New("rediscache: nil Redis client")
	}
	if namespace == "" {
		return nil, errors.New("rediscache: empty namespace; use the issuer and the API's client ID")
	}
	if !respectsDeadlines(rdb) {
		return nil, errors.New("rediscache: the Redis client ignores context deadlines, so a hung Redis would hold requests for its ReadTimeout; set ContextTimeoutEnabled: true in its options")
	}
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("rediscache: secret is %d bytes, want at least %d random bytes", len(secret), MinSecretSize)
	}
	c := &Cache{rdb: rdb, prefix: DefaultPrefix, timeout: DefaultTimeout, revTTL: DefaultRevocationTTL, ping: DefaultPingInterval, logger: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	if c.timeout <= 0 || c.revTTL < time.Millisecond || c.ping <= 0 {
		return nil, fmt.Errorf("rediscache: timeout %v and ping interval %v must be positive, revocation TTL %v at least 1ms", c.timeout, c.ping, c.revTTL)
	}
	if c.logger == nil {
		return nil, errors.New("rediscache: nil logger")
	}
	if c.hasPrevious && len(c.previous) < MinSecretSize {
		return nil, fmt.Errorf("rediscache: previous secret is %d bytes, want at least %d", len(c.previous), MinSecretSize)
	}
	c.rings = []*keyring{derive(secret, namespace, c.prefix)}
	if c.hasPrevious {
		if hmac.Equal(c.previous, secret) {
			return nil, errors.New("rediscache: previous secret equals the secret")
		}
		c.rings = append(c.rings, derive(c.previous, namespace, c.prefix))
	}
	clear(c.previous)
	c.previous = nil
	return c, nil
}

// respectsDeadlines reports whether go-redis bounds rdb's socket reads by the
// context's deadline, which it does only with ContextTimeoutEnabled. Clients
// of other types are taken at their word.
func respectsDeadlines(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// derive expands secret into the keys of one namespace with HKDF-SHA256;
// the label and the namespace, apart by a NUL that no label holds, are the
// info.
func derive(secret []byte, namespace, prefix string) *keyring {
	key := func(label string) []byte {
		k, err := hkdf.Key(sha256.New, secret, nil, "tokenguard rediscache v2 "+label+"\x00"+namespace, 32)
		if err != nil {
			panic("rediscache: hkdf: " + err.Error()) // only for lengths over 255*32
		}
		return k
	}
	kr := &keyring{index: key("index"), seal: key("seal")}
	block, err := aes.NewCipher(key("message"))
	if err != nil {
		panic("rediscache: " + err.Error()) // a 32-byte key is always valid
	}
	kr.msg, _ = cipher.NewGCM(block)
	kr.channel = prefix + "inv:" + kr.id('c', "")[:32]
	return kr
}

// id is the hex HMAC of kind and s under the index key: what a Redis key
// is named after.
func (k *keyring) id(kind byte, s string) string {
	m := hmac.New(sha256.New, k.index)
	m.Write([]byte{kind, 0})
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

// tokenID names token's entry and tombstone; the braces make them one hash
// slot in Redis Cluster.
func (k *keyring) tokenID(token string) string { return "{" + k.id('t', token) + "}" }

func (c *Cache) entryKey(id string) string     { return c.prefix + "e:" + id }
func (c *Cache) tombstoneKey(id string) string { return c.prefix + "d:" + id }
func (c *Cache) subjectKey(k *keyring, subject string) string {
	return c.prefix + "s:" + k.id('s', subject)
}
func (c *Cache) tokenIDKey(k *keyring, jti string) string { return c.prefix + "j:" + k.id('j', jti) }

// aead returns the AES-256-GCM sealing token's entries: its key is the HMAC
// of the token under the seal key.
func (k *keyring) aead(token string) cipher.AEAD {
	m := hmac.New(sha256.New, k.seal)
	m.Write([]byte(token))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic("rediscache: " + err.Error()) // a 32-byte key is always valid
	}
	aead, _ := cipher.NewGCM(block)
	return aead
}

// Errors returns how many Redis calls failed since the Cache was made, and
// how many times [Cache.Listen] lost its subscription (each loss purges the
// local cache). It is safe for concurrent use.
func (c *Cache) Errors() int64 { return c.errs.Load() }

// Rejected returns how many pub/sub messages [Cache.Listen] ignored since the
// Cache was made: forged, tampered, from another namespace or secret, or
// older than the revocation TTL. It is safe for concurrent use.
func (c *Cache) Rejected() int64 { return c.rejected.Load() }

func (c *Cache) fail(op string, err error) {
	c.errs.Add(1)
	c.logger.Warn("tokenguard: redis shared cache unavailable; carrying on without it", "op", op, "error", err.Error())
}

// sealed is the plaintext of a stored entry.
type sealed struct {
	Filled  int64           `json:"f"`
	Fresh   int64           `json:"r"`
	Expires int64           `json:"x"`
	Body    json.RawMessage `json:"b"`
}

var miss = introspect.SharedEntry{}

// Reads are bounded: whoever can write to Redis can grow any value to
// hundreds of megabytes with one small SETRANGE, and a GET would allocate
// all of it on every lookup. An entry is read up to maxEntrySize, more than
// a sealed entry of the largest body the Client accepts; a tombstone or an
// invalidation record, a decimal time, up to maxTimeSize. A value cut short
// does not open, or does not parse, and counts as a miss or as an
// invalidation. GETRANGE reads a missing key as "", which no value written
// here is.
const (
	maxEntrySize = introspect.MaxResponseSize + 4<<10
	maxTimeSize  = 32
)

// Lookup implements [introspect.SharedCache]. An entry is a miss when it
// cannot be opened with the secret and token, when it was filled at or
// before the token's tombstone, its subject's or its jti's invalidation, or
// more than a minute in the future; Fresh and Expires are capped at the
// revocation TTL after Filled.
func (c *Cache) Lookup(ctx context.Context, token string) (introspect.SharedEntry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ids := make([]string, len(c.rings))
	cmds := make([]*redis.StringCmd, 0, 2*len(c.rings))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range c.rings {
			ids[i] = k.tokenID(token)
			cmds = append(cmds, p.GetRange(ctx, c.entryKey(ids[i]), 0, maxEntrySize-1), p.GetRange(ctx, c.tombstoneKey(ids[i]), 0, maxTimeSize-1))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		c.fail("get", err)
		return miss, false, err
	}
	var s sealed
	found := false
	for i, k := range c.rings {
		raw, err := cmds[2*i].Bytes()
		if err != nil || len(raw) == 0 || len(raw) >= maxEntrySize {
			continue // absent, or cut short
		}
		if s, err = open(k.aead(token), c.entryKey(ids[i]), raw); err == nil {
			found = true
			break
		}
	}
	if !found {
		return miss, false, nil // absent, tampered, foreign or forged
	}
	if s.Filled > time.Now().Add(maxSkew).UnixNano() {
		return miss, false, nil
	}
	for i := range c.rings {
		if !c.before(cmds[2*i+1], s.Filled) {
			return miss, false, nil // invalidated since it was filled
		}
	}
	r, err := introspect.Decode(s.Body) // the claims exactly as the Client reads them
	if err != nil {
		return miss, false, nil
	}
	if r.Subject != "" || r.JWTID != "" {
		var revs []*redis.StringCmd
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range c.rings {
				if r.Subject != "" {
					revs = append(revs, p.GetRange(ctx, c.subjectKey(k, r.Subject), 0, maxTimeSize-1))
				}
				if r.JWTID != "" {
					revs = append(revs, p.GetRange(ctx, c.tokenIDKey(k, r.JWTID), 0, maxTimeSize-1))
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			c.fail("get revocations", err)
			return miss, false, err
		}
		for _, cmd := range revs {
			if !c.before(cmd, s.Filled) {
				return miss, false, nil
			}
		}
	}
	limit := s.Filled + int64(c.revTTL)
	return introspect.SharedEntry{Body: s.Body, Filled: time.Unix(0, s.Filled),
		Fresh: time.Unix(0, min(s.Fresh, limit)), Expires: time.Unix(0, min(s.Expires, limit))}, true, nil
}

// before reports whether the invalidation time that cmd read, if any, lies
// before filled. A value that is not a time (one cut short included) counts
// as an invalidation; "" is no value (GETRANGE of a missing key).
func (c *Cache) before(cmd *redis.StringCmd, filled int64) bool {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) || (err == nil && v == "") {
		return true
	}
	at, err := strconv.ParseInt(v, 10, 64)
	return err == nil && at < filled
}

// Store implements [introspect.SharedCache]: the entry is sealed under the
// current secret and kept until the earlier of e.Expires and the revocation
// TTL, so that a tombstone always outlives it.
func (c *Cache) Store(ctx context.Context, token string, e introspect.SharedEntry) error {
	ttl := min(time.Until(e.Expires), c.revTTL)
	if ttl <= 0 {
		return nil
	}
	k := c.rings[0]
	key := c.entryKey(k.tokenID(token))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // <, > and & as they are: six bytes each would grow a large body past maxEntrySize
	if err := enc.Encode(sealed{Filled: e.Filled.UnixNano(), Fresh: e.Fresh.UnixNano(), Expires: e.Expires.UnixNano(), Body: e.Body}); err != nil {
		return err
	}
	plain := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	aead := k.aead(token)
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return err
	}
	out = aead.Seal(out, out[1:], plain, []byte(key))
	if len(out) >= maxEntrySize {
		return nil // too large to be read back (see maxEntrySize): not shared
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Set(ctx, key, out, ttl).Err(); err != nil {
		c.fail("set", err)
		return err
	}
	return nil
}

func open(aead cipher.AEAD, key string, raw []byte) (sealed, error) {
	var s sealed
	if len(raw) < 1+aead.NonceSize() || raw[0] != sealVersion {
		return s, errors.New("rediscache: not a sealed entry")
	}
	plain, err := aead.Open(nil, raw[1:1+aead.NonceSize()], raw[1+aead.NonceSize():], []byte(key))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(plain, &s)
}

var (
	_ introspect.SharedCache       = (*Cache)(nil)
	_ introspect.SharedInvalidator = (*Cache)(nil)
)

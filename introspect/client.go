package introspect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sync/singleflight"

	"github.com/tokenguard/tokenguard/cache"
	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// ClientAuthenticator authenticates this client to the introspection endpoint
// by adding form fields or headers to each request, as
// [github.com/tokenguard/tokenguard/clientauth.PrivateKeyJWT] and
// [github.com/tokenguard/tokenguard/clientauth.ClientSecretBasic] do.
// Implementations must be safe for concurrent use.
type ClientAuthenticator interface {
	AuthenticateClient(form url.Values, header http.Header) error
}

// Client asks an RFC 7662 introspection endpoint about tokens, and by default
// caches the answers. A Client is safe for concurrent use; create one with
// [New] and share it.
type Client struct {
	ep       atomic.Pointer[endpoint] // nil until a deferred Client resolves it
	resolver *resolver                // for NewDeferred; nil with New
	auth     ClientAuthenticator
	cfg      config

	cache   *cache.LRU[[sha256.Size]byte, cached]   // active results; nil when caching is off
	neg     *cache.LRU[[sha256.Size]byte, struct{}] // inactive results; nil when off
	group   singleflight.Group
	sem     chan struct{} // in-flight introspection slots
	breaker breaker
	metrics *telemetry.Metrics

	rev   revocations // invalidations, for the cache and the flights; see invalidate.go
	local *localJWT   // WithLocalJWT; nil when off; see localjwt.go
}

// cached is an active result and the time (Unix ns) until which it is served
// without asking; past it, until the entry expires, it is only a fallback
// for WithStaleIfError.
type cached struct {
	resp  *Response
	fresh int64
	stamp // where the answer comes from, for the invalidations
}

// inactive is the shared result for tokens found in the negative cache.
var inactive = &Response{}

// New returns a Client for the introspection endpoint, authenticating with
// auth. The endpoint must be an absolute http or https URL; find it with
// [Discover] or set it explicitly.
func New(endpointURL string, auth ClientAuthenticator, opts ...Option) (*Client, error) {
	return newClient(&endpointURL, auth, opts...)
}

// newClient is New, or NewDeferred with a nil endpointURL.
func newClient(endpointURL *string, auth ClientAuthenticator, opts ...Option) (*Client, error) {
	var err error
	if auth == nil {
		return nil, errors.New("introspect: nil ClientAuthenticator")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.prepareTransport(); err != nil {
		return nil, err
	}
	var ep *endpoint
	if endpointURL != nil {
		if ep, err = cfg.parseEndpoint(*endpointURL); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{auth: auth, cfg: cfg, sem: make(chan struct{}, cfg.maxInFlight),
		breaker: breaker{threshold: cfg.threshold, cooldown: cfg.cooldown},
		metrics: telemetry.New(cfg.meters, cfg.tracers)}
	c.ep.Store(ep)
	c.rev.gen.Store(1) // local stamps start at 1; 0 marks a shared entry
	if cfg.local != nil {
		if c.local, err = newLocalJWT(&cfg); err != nil {
			return nil, err
		}
		c.local.keys.metrics = c.metrics
	}
	if !cfg.noCache {
		if c.cache, err = cache.New[[sha256.Size]byte, cached](cfg.cacheSize, cache.WithClock(cfg.now), cache.WithMaxCost(cfg.cacheBytes, entryCost)); err != nil {
			return nil, fmt.Errorf("introspect: %w", err)
		}
		if cfg.negativeTTL > 0 && cfg.negSize > 0 {
			if c.neg, err = cache.New[[sha256.Size]byte, struct{}](cfg.negSize, cache.WithClock(cfg.now)); err != nil {
				return nil, fmt.Errorf("introspect: %w", err)
			}
		}
	}
	return c, nil
}

// validate fills in the defaults that depend on other options and refuses
// values that make no sense, or that contradict each other, with an error
// that says which.
func (cfg *config) validate() error {
	if !cfg.negativeSet {
		cfg.negativeTTL = min(cfg.negativeTTL, cfg.maxTTL)
	}
	switch {
	case cfg.timeout <= 0:
		return fmt.Errorf("introspect: timeout %v must be positive", cfg.timeout)
	case cfg.cacheSize <= 0:
		return fmt.Errorf("introspect: cache size %d must be positive; use WithoutCache to turn caching off", cfg.cacheSize)
	case cfg.cacheBytes <= 0:
		return fmt.Errorf("introspect: cache bytes %d must be positive", cfg.cacheBytes)
	case cfg.maxTTL <= 0:
		return fmt.Errorf("introspect: max TTL %v must be positive", cfg.maxTTL)
	case cfg.negativeTTL < 0 || cfg.negativeTTL > cfg.maxTTL:
		return fmt.Errorf("introspect: negative TTL %v must be between 0 and the max TTL %v", cfg.negativeTTL, cfg.maxTTL)
	case cfg.negSize < 0:
		return fmt.Errorf("introspect: negative cache size %d must not be negative", cfg.negSize)
	case cfg.staleIfErr < 0:
		return fmt.Errorf("introspect: stale-if-error window %v must not be negative", cfg.staleIfErr)
	case cfg.maxInFlight <= 0 || cfg.flightWait < 0:
		return fmt.Errorf("introspect: max in flight %d must be positive and its wait %v not negative", cfg.maxInFlight, cfg.flightWait)
	case cfg.retries < 0 || cfg.retries > MaxRetries || (cfg.retries > 0 && cfg.backoff <= 0):
		return fmt.Errorf("introspect: %d retries with backoff %v: retries must be between 0 and %d, backoff positive", cfg.retries, cfg.backoff, MaxRetries)
	case cfg.threshold < 0 || (cfg.threshold > 0 && cfg.cooldown <= 0):
		return fmt.Errorf("introspect: circuit breaker threshold %d, cooldown %v: threshold must not be negative, cooldown positive", cfg.threshold, cfg.cooldown)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"timeout", cfg.timeout}, {"max TTL", cfg.maxTTL}, {"negative TTL", cfg.negativeTTL},
		{"stale-if-error window", cfg.staleIfErr}, {"in-flight wait", cfg.flightWait},
		{"retry backoff", cfg.backoff}, {"circuit breaker cooldown", cfg.cooldown}, {"attempt timeout", cfg.attemptTimeout},
	} {
		if d.d > MaxDuration {
			return fmt.Errorf("introspect: %s %v is longer than %v: an answer cached that long is no longer an answer", d.name, d.d, MaxDuration)
		}
	}
	if cfg.noCache {
		var with []string
		for _, o := range []struct {
			set  bool
			name string
		}{
			{cfg.shared != nil, "WithSharedCache"}, {cfg.staleIfErr > 0, "WithStaleIfError"},
			{cfg.sizeSet, "WithCacheSize"}, {cfg.bytesSet, "WithCacheBytes"},
			{cfg.negativeSet, "WithNegativeTTL"}, {cfg.negSizeSet, "WithNegativeCacheSize"},
			{cfg.local != nil, "WithLocalJWT"},
		} {
			if o.set {
				with = append(with, o.name)
			}
		}
		if len(with) > 0 {
			return fmt.Errorf("introspect: WithoutCache turns off the cache that %s would act on: drop one or the other", strings.Join(with, " and "))
		}
	}
	return nil
}

// entryCost is what a cached result costs against [WithCacheBytes]: the
// Response's footprint, measured when it was decoded, and the cache's own
// bookkeeping.
func entryCost(e cached) int64 {
	if e.resp.size > 0 {
		return e.resp.size + entryOverhead
	}
	return int64(unsafe.Sizeof(Response{})) + 2*int64(len(e.resp.raw)) + entryOverhead // not from Decode
}

// entryOverhead is the bookkeeping of one LRU entry: list node, map slot,
// key and stamp.
const entryOverhead = 192

// Endpoint returns the introspection endpoint URL, or "" while a Client
// made by [NewDeferred] has not resolved it.
func (c *Client) Endpoint() string {
	if ep := c.ep.Load(); ep != nil {
		return ep.url
	}
	return ""
}

// Introspect reports what the authorization server knows about token. It
// returns the response for an active token, [ErrInactive] for an inactive
// one, and otherwise an error that matches [ErrUnavailable] or
// [ErrClientAuth] with errors.Is, or is an [*Error]; [RetryAfter] tells how
// long to wait after an unavailable server.
//
// With caching on (the default), an answer is reused until the cache entry
// expires, and concurrent calls for an uncached token share one request to
// the server; each caller still returns as soon as its own ctx is done.
// Errors are never cached. Requests to the server are bounded in number
// ([WithMaxInFlight]), retried on network errors and 5xx ([WithRetries]),
// and stopped for a while after repeated failures ([WithCircuitBreaker]).
func (c *Client) Introspect(ctx context.Context, token string) (*Response, error) {
	if token == "" {
		return nil, ErrInactive
	}
	if c.cache == nil {
		return result(c.callDirect(ctx, token))
	}
	key := c.key(token)
	r, stale, state := c.lookup(ctx, key, c.cfg.now())
	switch state {
	case hitActive:
		return r, nil
	case hitInactive:
		return nil, ErrInactive
	}
	c.metrics.Lookup(ctx, telemetry.LRU, telemetry.Miss)
	if c.local != nil {
		if r, err, decided := c.decideLocally(ctx, key, token); decided {
			return r, err
		}
	}
	r, err := c.introspectMiss(ctx, key, token)
	if err != nil && stale != nil && errors.Is(err, ErrUnavailable) {
		// Look again: an invalidation made while the call failed kills
		// the stale answer too.
		if _, stale, _, _ = c.peek(key, c.cfg.now()); stale != nil {
			c.metrics.Lookup(ctx, telemetry.LRU, telemetry.Stale)
			return stale, nil // WithStaleIfError: never past exp, see store
		}
	}
	return r, err
}

type lookupState uint8

const (
	miss lookupState = iota
	hitActive
	hitInactive
)

// peek looks key up in the caches at one clock reading, without counting:
// the single place that says what a fresh hit is. On a miss it also returns
// a stale active result, if one is kept for WithStaleIfError.
func (c *Client) peek(key [sha256.Size]byte, at time.Time) (r, stale *Response, _ lookupState, age time.Duration) {
	if e, ok := c.cache.GetAt(key, at); ok && !c.dead(e.resp, e.stamp) {
		if now := at.UnixNano(); now < e.fresh {
			return e.resp, nil, hitActive, time.Duration(now - e.filled) // only active results are in c.cache
		}
		stale = e.resp
	} else if c.neg != nil {
		if _, ok := c.neg.GetAt(key, at); ok {
			return nil, nil, hitInactive, 0
		}
	}
	return nil, stale, miss, 0
}

// lookup is peek, counted in the metrics.
func (c *Client) lookup(ctx context.Context, key [sha256.Size]byte, at time.Time) (r, stale *Response, _ lookupState) {
	r, stale, state, age := c.peek(key, at)
	switch state {
	case hitActive:
		c.metrics.Lookup(ctx, telemetry.LRU, telemetry.Hit)
		src := telemetry.Introspected
		if r.local {
			src = telemetry.Local
		}
		c.metrics.Age(ctx, age, src)
	case hitInactive:
		c.metrics.Lookup(ctx, telemetry.LRU, telemetry.Hit)
	}
	return r, stale, state
}

// Cached returns token's result when the Client's own cache holds a fresh
// one, without ever asking the server or the shared cache: the response for
// an active token, or one whose Active is false. Otherwise it reports false,
// and the caller goes on to [Client.Introspect]. The middleware uses it to
// skip checks that only matter before a token is sent to the server.
func (c *Client) Cached(ctx context.Context, token string) (*Response, bool) {
	return c.cached(ctx, token, c.cfg.now())
}

// CachedAt is [Client.Cached] for a caller that has just read the system
// clock, so that one request reads it once: now stands in for the Client's
// clock when that is the default, [time.Now]. A Client given [WithClock]
// reads its own clock and ignores now.
func (c *Client) CachedAt(ctx context.Context, token string, now time.Time) (*Response, bool) {
	if !c.cfg.systemClock {
		now = c.cfg.now()
	}
	return c.cached(ctx, token, now)
}

func (c *Client) cached(ctx context.Context, token string, now time.Time) (*Response, bool) {
	if c.cache == nil || token == "" {
		return nil, false
	}
	r, _, state := c.lookup(ctx, c.key(token), now)
	switch state {
	case hitActive:
		return r, true
	case hitInactive:
		return inactive, true
	}
	return nil, false
}

func result(r *Response, err error) (*Response, error) {
	if err != nil {
		return nil, err
	}
	if !r.Active {
		return nil, ErrInactive
	}
	return r, nil
}

// key returns SHA-256(token): the cache never holds a token, only its
// digest. The digest is taken over the string's own bytes, read in place:
// no copy of the token is made. Each Client has its own caches, so the key
// need not name the endpoint.
func (c *Client) key(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token))) // Sum256 only reads
}

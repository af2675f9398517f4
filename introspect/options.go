package introspect

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for a [Client].
const (
	DefaultTimeout   = 10 * time.Second
	DefaultCacheSize = 10_000
	// DefaultCacheBytes bounds the memory the active results take: their
	// response bodies and decoded fields, whatever the server sends.
	DefaultCacheBytes  = 64 << 20
	DefaultMaxTTL      = 5 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	// DefaultNegativeCacheSize bounds the inactive results cached, apart
	// from the active ones, so that junk tokens cannot evict good entries.
	DefaultNegativeCacheSize = 1_000
	// DefaultMaxInFlight bounds concurrent introspection requests.
	DefaultMaxInFlight = 64
	// DefaultInFlightWait is how long a call waits for an in-flight slot.
	DefaultInFlightWait = 250 * time.Millisecond
	// DefaultRetries is how many times a failed call is retried;
	// MaxRetries is the most [WithRetries] accepts.
	DefaultRetries = 2
	MaxRetries     = 10
	// DefaultBreakerThreshold is how many failures in a row open the
	// circuit breaker; DefaultBreakerCooldown is how long it stays open.
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 5 * time.Second
	// MaxDuration bounds every duration option (max TTL, stale-if-error
	// window, timeouts, cool-downs), so that no sum of them overflows.
	MaxDuration = 24 * time.Hour
	// MaxResponseSize caps how much of a response body is read.
	MaxResponseSize = 1 << 20
	// DefaultAttemptTimeout bounds each attempt of a call; see
	// [WithAttemptTimeout].
	DefaultAttemptTimeout = 3 * time.Second
)

// Option configures a [Client].
type Option func(*config)

type config struct {
	httpClient *http.Client
	timeout    time.Duration
	cacheSize  int
	cacheBytes int64
	noCache    bool // WithoutCache
	// Set by their options, for the conflicts New refuses.
	sizeSet, bytesSet, negSizeSet bool
	maxTTL                        time.Duration
	negativeTTL                   time.Duration
	negativeSet                   bool // negativeTTL was set by WithNegativeTTL
	negSize                       int
	staleIfErr                    time.Duration
	maxInFlight                   int
	flightWait                    time.Duration
	retries                       int
	backoff                       time.Duration
	threshold                     int
	cooldown                      time.Duration
	shared                        SharedCache
	meters                        metric.MeterProvider
	tracers                       trace.TracerProvider
	now                           func() time.Time
	systemClock                   bool // now is time.Now: no WithClock

	attemptTimeout time.Duration // bounds each attempt; see WithAttemptTimeout
	insecureHTTP   bool          // WithInsecureAllowHTTP
	local          *LocalJWT     // WithLocalJWT; nil when off
}

func defaultConfig() config {
	return config{
		httpClient:  newHTTPClient(),
		timeout:     DefaultTimeout,
		cacheSize:   DefaultCacheSize,
		cacheBytes:  DefaultCacheBytes,
		maxTTL:      DefaultMaxTTL,
		negativeTTL: DefaultNegativeTTL,
		negSize:     DefaultNegativeCacheSize,
		maxInFlight: DefaultMaxInFlight,
		flightWait:  DefaultInFlightWait,
		retries:     DefaultRetries,
		backoff:     50 * time.Millisecond,
		threshold:   DefaultBreakerThreshold,
		cooldown:    DefaultBreakerCooldown,
		now:         time.Now,
		systemClock: true,

		attemptTimeout: DefaultAttemptTimeout,
	}
}

// WithHTTPClient sets the HTTP client for introspection requests; nil keeps
// the default, a client on [NewTransport] (HTTP/2 where offered, enough idle
// connections for the in-flight limit). c is used as given otherwise. Its own Timeout, if any, applies on top
// of [WithTimeout]. Redirects are never followed, whatever its CheckRedirect
// says: [New] uses a shallow copy, leaving c unchanged, and a 3xx answer is
// a [*RedirectError].
func WithHTTPClient(c *http.Client) Option {
	return func(cfg *config) {
		if c != nil {
			cfg.httpClient = c
		}
	}
}

// WithTimeout bounds each introspection call, including reading the response
// and any retries; [WithAttemptTimeout] bounds each attempt inside it.
// Default: [DefaultTimeout] (10 s). A cached call that several requests wait
// on runs for this long even if the request that started it goes away.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithCacheSize sets how many active introspection results are cached.
// Default: [DefaultCacheSize] (10,000). It must be positive: [New] refuses
// 0 or less; use [WithoutCache] to turn caching off.
func WithCacheSize(n int) Option { return func(c *config) { c.cacheSize, c.sizeSet = n, true } }

// WithCacheBytes bounds the memory the cached active results take, besides
// their number: each costs its response body and decoded fields, measured
// when it is decoded (the body is at most [MaxResponseSize], however large
// the server's answers), and the least recently used are evicted to stay
// under n; a result larger than n is served but not cached. Default:
// [DefaultCacheBytes] (64 MiB). It must be positive.
func WithCacheBytes(n int64) Option { return func(c *config) { c.cacheBytes, c.bytesSet = n, true } }

// WithoutCache turns the result cache off: every call asks the server, and
// concurrent calls for one token are not coalesced. It leaves nothing for
// the options that work on cached results: [New] refuses it together with
// [WithSharedCache], [WithStaleIfError], [WithCacheSize], [WithCacheBytes],
// [WithNegativeTTL] or [WithNegativeCacheSize].
func WithoutCache() Option { return func(c *config) { c.noCache = true } }

// WithMaxTTL bounds how long an active result is cached: until the earlier of
// the token's exp and now plus d. Default: [DefaultMaxTTL] (5 minutes). It is
// the longest a revoked token or a removed role can go unnoticed.
func WithMaxTTL(d time.Duration) Option { return func(c *config) { c.maxTTL = d } }

// WithNegativeTTL sets how long an inactive result is cached, to spare the
// server repeated questions about a dead token. Default: [DefaultNegativeTTL]
// (30 s), or the max TTL if that is shorter; 0 turns negative caching off. It
// may not exceed the max TTL.
func WithNegativeTTL(d time.Duration) Option {
	return func(c *config) { c.negativeTTL, c.negativeSet = d, true }
}

// WithNegativeCacheSize bounds how many inactive results are cached. They
// live in their own LRU, so that a flood of junk tokens cannot evict active
// entries. Default: [DefaultNegativeCacheSize] (1,000).
func WithNegativeCacheSize(n int) Option {
	return func(c *config) { c.negSize, c.negSizeSet = n, true }
}

// WithStaleIfError lets an active result be served for up to d past the max
// TTL while the server is unavailable, and never past the token's exp.
// Default: 0, off: a server outage refuses requests (503) once entries reach
// the max TTL. Turning it on trades the staleness bound (max TTL + d) for
// availability during outages.
func WithStaleIfError(d time.Duration) Option { return func(c *config) { c.staleIfErr = d } }

// WithMaxInFlight bounds how many introspection requests run at once; a call
// beyond it waits up to wait for a slot, then fails with [ErrUnavailable], so
// that a flood of distinct tokens cannot overload the server or this process.
// A slot is held for one attempt ([WithAttemptTimeout]), not during the
// backoff before a retry, which waits for a slot again.
// Default: [DefaultMaxInFlight] (64), [DefaultInFlightWait] (250 ms).
func WithMaxInFlight(n int, wait time.Duration) Option {
	return func(c *config) { c.maxInFlight, c.flightWait = n, wait }
}

// WithRetries sets how many times a call that failed with a network error or
// a 5xx status is retried, after an exponential backoff from base with full
// jitter, and only while the call's deadline allows. 4xx answers, including
// 429, are never retried. Default: [DefaultRetries] (2), base 50 ms; 0 turns
// retries off. n must be between 0 and [MaxRetries], base positive when n
// is not 0.
func WithRetries(n int, base time.Duration) Option {
	return func(c *config) { c.retries, c.backoff = n, base }
}

// WithCircuitBreaker makes calls fail fast with [ErrUnavailable] for cooldown
// after threshold calls in a row failed as unavailable; then one call probes
// the server, and its success closes the breaker. Default:
// [DefaultBreakerThreshold] (5) and [DefaultBreakerCooldown] (5 s); a
// threshold of 0 turns the breaker off.
func WithCircuitBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *config) { c.threshold, c.cooldown = threshold, cooldown }
}

// WithMeterProvider sets where the Client's metrics go (cache lookups by
// result, decision age, introspection duration and calls in flight,
// coalesced waiters, evictions, invalidations). Default: the global
// OpenTelemetry provider, a no-op until the application installs one.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.meters = mp } }

// WithTracerProvider sets where the span of each introspection call goes.
// Default: the global OpenTelemetry provider. Spans carry no token.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tracers = tp } }

// WithClock sets the clock used for cache expiry. Default: [time.Now].
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now, c.systemClock = now, false
		}
	}
}

// WithAttemptTimeout bounds each attempt of a call (the first request and
// each retry), inside the call's own timeout ([WithTimeout]): an attempt
// that gets no answer in time is cancelled and, like a network error,
// retried while the call's deadline allows. An attempt holds an in-flight
// slot ([WithMaxInFlight]) only while it runs, not during the backoff
// between attempts, so a hung server frees each slot after at most d.
// Default: [DefaultAttemptTimeout] (3 s), or the call's timeout if that is
// shorter; d must be positive. With retries off, it is the longest a call
// waits for the server. Set it above the server's slowest healthy answer,
// connection and TLS handshake included: an attempt cut short is retried,
// over HTTP/1.1 on a new connection.
func WithAttemptTimeout(d time.Duration) Option { return func(c *config) { c.attemptTimeout = d } }

// WithInsecureAllowHTTP lets [New] accept a plain-http endpoint on a host
// other than loopback. Default: off: the endpoint MUST be https, except on
// localhost, 127.0.0.0/8 or ::1, because each request carries a token and
// this client's credentials. Use it only on a network you trust.
func WithInsecureAllowHTTP() Option { return func(c *config) { c.insecureHTTP = true } }

package introspect

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for a [Client].
const (
	DefaultTimeout     = 10 * time.Second
	DefaultCacheSize   = 10_000
	DefaultMaxTTL      = 5 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	// DefaultNegativeCacheSize bounds the inactive results cached, apart
	// from the active ones, so that junk tokens cannot evict good entries.
	DefaultNegativeCacheSize = 1_000
	// DefaultMaxInFlight bounds concurrent introspection requests.
	DefaultMaxInFlight = 64
	// DefaultInFlightWait is how long a call waits for an in-flight slot.
	DefaultInFlightWait = 250 * time.Millisecond
	// DefaultRetries is how many times a failed call is retried.
	DefaultRetries = 2
	// DefaultBreakerThreshold is how many failures in a row open the
	// circuit breaker; DefaultBreakerCooldown is how long it stays open.
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 5 * time.Second
	// MaxResponseSize caps how much of a response body is read.
	MaxResponseSize = 1 << 20
)

// Option configures a [Client].
type Option func(*config)

type config struct {
	httpClient  *http.Client
	timeout     time.Duration
	cacheSize   int
	maxTTL      time.Duration
	negativeTTL time.Duration
	negativeSet bool // negativeTTL was set by WithNegativeTTL
	negSize     int
	staleIfErr  time.Duration
	maxInFlight int
	flightWait  time.Duration
	retries     int
	backoff     time.Duration
	threshold   int
	cooldown    time.Duration
	shared      SharedCache
	meters      metric.MeterProvider
	tracers     trace.TracerProvider
	now         func() time.Time
	systemClock bool // now is time.Now: no WithClock
}

func defaultConfig() config {
	return config{
		httpClient:  &http.Client{},
		timeout:     DefaultTimeout,
		cacheSize:   DefaultCacheSize,
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
	}
}

// WithHTTPClient sets the HTTP client for introspection requests. Default: a
// client on [http.DefaultTransport]. Its own Timeout, if any, applies on top
// of [WithTimeout].
func WithHTTPClient(c *http.Client) Option {
	return func(cfg *config) {
		if c != nil {
			cfg.httpClient = c
		}
	}
}

// WithTimeout bounds each introspection call, including reading the response.
// Default: [DefaultTimeout] (10 s). A cached call that several requests wait
// on runs for this long even if the request that started it goes away.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithCacheSize sets how many introspection results are cached. Default:
// [DefaultCacheSize] (10,000). It must be positive; use [WithoutCache] to turn
// caching off.
func WithCacheSize(n int) Option { return func(c *config) { c.cacheSize = n } }

// WithoutCache turns the result cache off: every call asks the server, and
// concurrent calls for one token are not coalesced.
func WithoutCache() Option { return func(c *config) { c.cacheSize = 0 } }

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
func WithNegativeCacheSize(n int) Option { return func(c *config) { c.negSize = n } }

// WithStaleIfError lets an active result be served for up to d past the max
// TTL while the server is unavailable, and never past the token's exp.
// Default: 0, off: a server outage refuses requests (503) once entries reach
// the max TTL. Turning it on trades the staleness bound (max TTL + d) for
// availability during outages.
func WithStaleIfError(d time.Duration) Option { return func(c *config) { c.staleIfErr = d } }

// WithMaxInFlight bounds how many introspection requests run at once; a call
// beyond it waits up to wait for a slot, then fails with [ErrUnavailable], so
// that a flood of distinct tokens cannot overload the server or this process.
// Default: [DefaultMaxInFlight] (64), [DefaultInFlightWait] (250 ms).
func WithMaxInFlight(n int, wait time.Duration) Option {
	return func(c *config) { c.maxInFlight, c.flightWait = n, wait }
}

// WithRetries sets how many times a call that failed with a network error or
// a 5xx status is retried, after an exponential backoff from base with full
// jitter, and only while the call's deadline allows. 4xx answers, including
// 429, are never retried. Default: [DefaultRetries] (2), base 50 ms; 0 turns
// retries off.
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

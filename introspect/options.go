package introspect

import (
	"net/http"
	"time"
)

// Defaults for a [Client].
const (
	DefaultTimeout     = 10 * time.Second
	DefaultCacheSize   = 10_000
	DefaultMaxTTL      = 5 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
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
	now         func() time.Time
}

func defaultConfig() config {
	return config{
		httpClient:  &http.Client{},
		timeout:     DefaultTimeout,
		cacheSize:   DefaultCacheSize,
		maxTTL:      DefaultMaxTTL,
		negativeTTL: DefaultNegativeTTL,
		now:         time.Now,
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

// WithClock sets the clock used for cache expiry. Default: [time.Now].
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

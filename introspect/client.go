package introspect

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
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
	endpoint string
	auth     ClientAuthenticator
	cfg      config

	cache   *cache.LRU[[sha256.Size]byte, cached]   // active results; nil when caching is off
	neg     *cache.LRU[[sha256.Size]byte, struct{}] // inactive results; nil when off
	group   singleflight.Group
	sem     chan struct{} // in-flight introspection slots
	breaker breaker
	metrics *telemetry.Metrics
	server  string // the endpoint's host, for spans

	hasRevoked atomic.Bool      // revoked is not empty
	revMu      sync.RWMutex     // guards revoked
	revoked    map[string]int64 // subject -> when it was invalidated (Unix ns)
}

// cached is an active result and the time (Unix ns) until which it is served
// without asking; past it, until the entry expires, it is only a fallback
// for WithStaleIfError.
type cached struct {
	resp   *Response
	fresh  int64
	filled int64 // when it was introspected, for InvalidateSubject
}

// inactive is the shared result for tokens found in the negative cache.
var inactive = &Response{}

// New returns a Client for the introspection endpoint, authenticating with
// auth. The endpoint must be an absolute http or https URL; find it with
// [Discover] or set it explicitly.
func New(endpoint string, auth ClientAuthenticator, opts ...Option) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("introspect: endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if auth == nil {
		return nil, errors.New("introspect: nil ClientAuthenticator")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.negativeSet {
		cfg.negativeTTL = min(cfg.negativeTTL, cfg.maxTTL)
	}
	switch {
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("introspect: timeout %v must be positive", cfg.timeout)
	case cfg.cacheSize < 0:
		return nil, fmt.Errorf("introspect: cache size %d must be positive", cfg.cacheSize)
	case cfg.maxTTL <= 0:
		return nil, fmt.Errorf("introspect: max TTL %v must be positive", cfg.maxTTL)
	case cfg.negativeTTL < 0 || cfg.negativeTTL > cfg.maxTTL:
		return nil, fmt.Errorf("introspect: negative TTL %v must be between 0 and the max TTL %v", cfg.negativeTTL, cfg.maxTTL)
	case cfg.negSize < 0:
		return nil, fmt.Errorf("introspect: negative cache size %d must not be negative", cfg.negSize)
	case cfg.staleIfErr < 0:
		return nil, fmt.Errorf("introspect: stale-if-error window %v must not be negative", cfg.staleIfErr)
	case cfg.maxInFlight <= 0 || cfg.flightWait < 0:
		return nil, fmt.Errorf("introspect: max in flight %d must be positive and its wait %v not negative", cfg.maxInFlight, cfg.flightWait)
	case cfg.retries < 0 || (cfg.retries > 0 && cfg.backoff <= 0):
		return nil, fmt.Errorf("introspect: %d retries with backoff %v: retries must not be negative, backoff positive", cfg.retries, cfg.backoff)
	case cfg.threshold < 0 || (cfg.threshold > 0 && cfg.cooldown <= 0):
		return nil, fmt.Errorf("introspect: circuit breaker threshold %d, cooldown %v: threshold must not be negative, cooldown positive", cfg.threshold, cfg.cooldown)
	}
	c := &Client{endpoint: endpoint, auth: auth, cfg: cfg, sem: make(chan struct{}, cfg.maxInFlight),
		breaker: breaker{threshold: cfg.threshold, cooldown: cfg.cooldown},
		metrics: telemetry.New(cfg.meters, cfg.tracers), server: u.Host}
	if cfg.cacheSize > 0 {
		if c.cache, err = cache.New[[sha256.Size]byte, cached](cfg.cacheSize, cache.WithClock(cfg.now)); err != nil {
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

// Endpoint returns the introspection endpoint URL.
func (c *Client) Endpoint() string { return c.endpoint }

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
		ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
		return result(c.call(ctx, token))
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
	r, err := c.introspectMiss(ctx, key, token)
	if err != nil && stale != nil && errors.Is(err, ErrUnavailable) {
		c.metrics.Lookup(ctx, telemetry.LRU, telemetry.Stale)
		return stale, nil // WithStaleIfError: never past exp, see store
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
	if e, ok := c.cache.GetAt(key, at); ok && !c.revokedSince(e.resp.Subject, e.filled) {
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
		c.metrics.Age(ctx, age)
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

// introspectMiss asks the server through the singleflight group. It is apart
// from Introspect so that the closure's captures stay off the hit path.
func (c *Client) introspectMiss(ctx context.Context, key [sha256.Size]byte, token string) (*Response, error) {
	var led atomic.Bool // this caller's flight ran the function
	ch := c.group.DoChan(string(key[:]), func() (any, error) {
		led.Store(true)
		// A flight that finished between our lookup and DoChan has filled
		// the cache: look again so that one token costs one call.
		switch r, _, state, _ := c.peek(key, c.cfg.now()); state {
		case hitActive:
			return r, nil
		case hitInactive:
			return inactive, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
		defer cancel()
		if r, ok := c.lookupShared(ctx, key, token); ok {
			return r, nil
		}
		r, err := c.call(ctx, token)
		if err != nil {
			return nil, err
		}
		c.store(ctx, key, token, r)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect: waiting for the authorization server: %w", context.Cause(ctx))
	case res := <-ch:
		if !led.Load() {
			c.metrics.Coalesced(ctx)
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return result(res.Val.(*Response), nil)
	}
}

// Invalidate drops the cached answer for token, if any, so that the next
// [Client.Introspect] asks the server again. With a [SharedInvalidator] it
// reaches every replica.
func (c *Client) Invalidate(token string) {
	key := c.key(token)
	c.InvalidateCacheKey(key)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateShared(context.Background(), key, token)
	}
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

// lookupShared asks the shared cache, if any, and copies a fresh answer that
// no subject invalidation has overtaken into the LRU.
func (c *Client) lookupShared(ctx context.Context, key [sha256.Size]byte, token string) (*Response, bool) {
	if c.cfg.shared == nil {
		return nil, false
	}
	e, ok, err := c.cfg.shared.Lookup(ctx, token)
	now := c.cfg.now()
	if err != nil || !ok || !now.Before(e.Fresh) {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	r, err := Decode(e.Body)
	if err != nil || c.revokedSince(r.Subject, e.Filled.UnixNano()) {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Hit)
	c.metrics.Age(ctx, now.Sub(e.Filled))
	c.storeLocal(ctx, key, r, e)
	return r, true
}

// store caches r in the LRU and the shared cache: an active result fresh
// until the earlier of its exp and the max TTL (kept up to the
// stale-if-error window longer, never past exp), an inactive one for the
// negative TTL.
func (c *Client) store(ctx context.Context, key [sha256.Size]byte, token string, r *Response) {
	now := c.cfg.now()
	e := SharedEntry{Filled: now}
	if !r.Active {
		e.Fresh = now.Add(c.cfg.negativeTTL)
		e.Expires = e.Fresh
	} else {
		exp := r.Expiration.AsTime()
		e.Fresh = now.Add(c.cfg.maxTTL)
		if !exp.IsZero() && exp.Before(e.Fresh) {
			e.Fresh = exp
		}
		e.Expires = e.Fresh
		if c.cfg.staleIfErr > 0 {
			e.Expires = now.Add(c.cfg.maxTTL + c.cfg.staleIfErr)
			if !exp.IsZero() && exp.Before(e.Expires) {
				e.Expires = exp
			}
		}
	}
	c.storeLocal(ctx, key, r, e)
	if c.cfg.shared != nil && e.Fresh.After(now) && (r.Active || c.cfg.negativeTTL > 0) {
		e.Body, _ = r.MarshalJSON()
		_ = c.cfg.shared.Store(ctx, token, e) // best effort: the implementation reports its own errors
	}
}

func (c *Client) storeLocal(ctx context.Context, key [sha256.Size]byte, r *Response, e SharedEntry) {
	var evicted bool
	if !r.Active {
		c.cache.Remove(key) // a stale active entry must not outlive the news
		if c.neg != nil {
			evicted = c.neg.Add(key, struct{}{}, e.Expires)
		}
	} else {
		evicted = c.cache.Add(key, cached{resp: r, fresh: e.Fresh.UnixNano(), filled: e.Filled.UnixNano()}, e.Expires) // an exp already past stores nothing
	}
	if evicted {
		c.metrics.Evicted(ctx, telemetry.LRU)
	}
}

// call makes one introspection, guarded by the circuit breaker and the
// in-flight limit, with retries.
func (c *Client) call(ctx context.Context, token string) (*Response, error) {
	if err := c.breaker.allow(c.cfg.now()); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	default:
		t := time.NewTimer(c.cfg.flightWait)
		select {
		case c.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, &UnavailableError{Reason: fmt.Sprintf("%d introspections already in flight", cap(c.sem)), RetryAfter: time.Second}
		case <-ctx.Done():
			t.Stop()
			return nil, unavailable("waiting for an in-flight slot: %w", ctx.Err())
		}
	}
	defer func() { <-c.sem }()
	ctx, done := c.metrics.StartIntrospection(ctx, c.server)
	r, err := c.fetchWithRetries(ctx, token)
	c.breaker.record(err, c.cfg.now())
	done(resultOf(r, err))
	return r, err
}

func resultOf(r *Response, err error) telemetry.Result {
	switch {
	case err == nil && r.Active:
		return telemetry.Active
	case err == nil:
		return telemetry.Inactive
	case errors.Is(err, ErrClientAuth):
		return telemetry.ClientAuthRejected
	case errors.Is(err, ErrUnavailable):
		return telemetry.ServerUnavailable
	}
	return telemetry.Failed
}

// fetchWithRetries retries network errors and 5xx answers with exponential
// backoff and full jitter, while the deadline leaves time for the wait.
func (c *Client) fetchWithRetries(ctx context.Context, token string) (*Response, error) {
	for attempt := 0; ; attempt++ {
		r, err := c.fetch(ctx, token)
		if err == nil || attempt >= c.cfg.retries || !retryable(err) || ctx.Err() != nil {
			return r, err
		}
		wait := rand.N(min(c.cfg.backoff<<attempt, time.Second) + 1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return r, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, err
		}
	}
}

// retryable reports network errors and 5xx answers; never 4xx, timeouts of
// the call itself, or answers that could not be decoded.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500
	}
	var te *transportError
	return errors.As(err, &te) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// transportError is a failure to exchange the request and response: the
// kind worth retrying.
type transportError struct{ err error }

func (e *transportError) Error() string {
	return "introspect: authorization server unavailable: " + e.err.Error()
}
func (e *transportError) Unwrap() error        { return e.err }
func (e *transportError) Is(target error) bool { return target == ErrUnavailable }

// breaker is a consecutive-failure circuit breaker.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex // guards the fields below
	failures  int
	openUntil time.Time
	probing   bool
}

func (b *breaker) allow(now time.Time) error {
	if b.threshold == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.openUntil) {
		return &UnavailableError{Reason: fmt.Sprintf("circuit breaker open after %d failures in a row", b.failures), RetryAfter: b.openUntil.Sub(now)}
	}
	if b.failures >= b.threshold { // cooldown over: let one call probe
		if b.probing {
			return &UnavailableError{Reason: "circuit breaker probing the server", RetryAfter: time.Second}
		}
		b.probing = true
	}
	return nil
}

// record counts a call's outcome: an answer of any kind from the server
// closes the breaker; threshold failures in a row open it.
func (b *breaker) record(err error, now time.Time) {
	if b.threshold == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err == nil || !errors.Is(err, ErrUnavailable) {
		b.failures, b.openUntil = 0, time.Time{}
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
	}
}

// fetch makes one introspection request.
func (c *Client) fetch(ctx context.Context, token string) (*Response, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	header := make(http.Header, 4)
	if err := c.auth.AuthenticateClient(form, header); err != nil {
		return nil, fmt.Errorf("introspect: authenticating client: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	req.Header = header
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, &transportError{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, &transportError{fmt.Errorf("reading response: %w", err)}
	}
	if len(body) > MaxResponseSize {
		return nil, unavailable("response body exceeds %d bytes", MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFromResponse(resp, body, c.cfg.now(), token)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, unavailable("response content type %q is not JSON", resp.Header.Get("Content-Type"))
	}
	r, err := Decode(body)
	if err != nil {
		return nil, unavailable("%w", err)
	}
	return r, nil
}

// errorFromResponse reads an error answer. Its text comes from the server:
// the token is cut out of it, so that no log or error message can carry it.
func errorFromResponse(resp *http.Response, body []byte, now time.Time, token string) *Error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Code = truncate(strings.ReplaceAll(eb.Error, token, "[token]"), 100)
		e.Description = truncate(strings.ReplaceAll(eb.Description, token, "[token]"), 500)
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

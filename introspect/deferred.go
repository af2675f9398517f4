package introspect

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// Backoff of the endpoint's resolution for a Client made by [NewDeferred]:
// the first retry after DeferredBackoffMin, doubling to DeferredBackoffMax,
// with jitter.
const (
	DeferredBackoffMin = 500 * time.Millisecond
	DeferredBackoffMax = 30 * time.Second
)

// ErrNotReady is matched, with errors.Is, by the error of a call made before
// the introspection endpoint of a [NewDeferred] Client is known. It also
// matches [ErrUnavailable]: the middleware answers 503 with Retry-After.
var ErrNotReady = errors.New("introspect: introspection endpoint not known yet")

// endpoint is where introspection requests go.
type endpoint struct {
	url  string
	host string // for spans
}

// resolver finds the endpoint of a Client made by NewDeferred, one attempt
// at a time, at most once per backoff interval.
type resolver struct {
	resolve func(ctx context.Context) (string, error)

	mu      sync.Mutex         // guards the fields below
	attempt chan struct{}      // closed when the running attempt ends; nil if none runs
	cancel  context.CancelFunc // ends the running attempt
	next    time.Time          // no new attempt before then
	backoff time.Duration
	err     error // of the last attempt
	closed  bool  // by Client.Close: no attempt starts any more
}

// close ends the running attempt, if any, waits for it, and lets no other
// start.
func (rv *resolver) close() {
	rv.mu.Lock()
	rv.closed = true
	cancel, done := rv.cancel, rv.attempt
	rv.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if done != nil {
		<-done
	}
}

// NewDeferred returns a Client whose introspection endpoint is not known
// yet: resolve finds it (typically with [Discover]) when a call or
// [Client.Ready] needs it, one attempt at a time and, after a failure, no
// sooner than a backoff from [DeferredBackoffMin] doubling to
// [DeferredBackoffMax]. Until an attempt succeeds, calls fail at once with
// an error matching [ErrNotReady] and [ErrUnavailable] (so 503 with
// Retry-After in the middleware); cached results, invalidations and
// everything else work as with [New]. The resolved endpoint must satisfy
// the rules of [New]; one that does not is a failed attempt.
//
// NewDeferred itself makes no request and starts no goroutine; each attempt
// runs in a goroutine of its own, bounded by [WithTimeout]; [Client.Close]
// ends the running attempt and starts no other. Use it to start
// an API while its authorization server is down; use [New] when the
// endpoint is known.
func NewDeferred(resolve func(ctx context.Context) (string, error), auth ClientAuthenticator, opts ...Option) (*Client, error) {
	if resolve == nil {
		return nil, errors.New("introspect: nil endpoint resolver")
	}
	c, err := newClient(nil, auth, opts...)
	if err != nil {
		return nil, err
	}
	c.resolver = &resolver{resolve: resolve}
	return c, nil
}

// parseEndpoint checks an endpoint URL against the rules of [New].
func (cfg *config) parseEndpoint(raw string) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("introspect: endpoint %q is not an absolute http(s) URL", raw)
	}
	if err := cfg.checkEndpoint(u); err != nil {
		return nil, err
	}
	return &endpoint{url: raw, host: u.Host}, nil
}

// endpoint returns where introspection requests go, or an [ErrNotReady]
// error while a deferred Client has not found it; then it starts an
// attempt if none runs and the backoff allows.
func (c *Client) endpoint() (*endpoint, error) {
	if ep := c.ep.Load(); ep != nil {
		return ep, nil
	}
	_, err := c.resolveAttempt()
	return nil, err
}

// resolveAttempt starts an attempt if none runs and the backoff allows, and
// returns the channel closed when the running attempt ends (nil if none
// runs) and the error to report meanwhile.
func (c *Client) resolveAttempt() (<-chan struct{}, error) {
	rv := c.resolver
	now := c.cfg.now()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if c.ep.Load() != nil {
		return nil, nil
	}
	if rv.closed {
		return nil, &UnavailableError{Reason: "the client was closed before the introspection endpoint was resolved", RetryAfter: DeferredBackoffMax, Err: ErrNotReady}
	}
	if rv.attempt == nil && !now.Before(rv.next) {
		rv.attempt = make(chan struct{})
		var ctx context.Context
		ctx, rv.cancel = context.WithTimeout(context.Background(), c.cfg.timeout)
		go c.runAttempt(ctx, rv.attempt)
	}
	wait := time.Second
	if d := rv.next.Sub(now); d > wait {
		wait = d
	}
	reason := "the introspection endpoint is being resolved"
	if rv.err != nil {
		reason = "resolving the introspection endpoint failed, retrying: " + rv.err.Error()
	}
	return rv.attempt, &UnavailableError{Reason: reason, RetryAfter: wait, Err: ErrNotReady}
}

func (c *Client) runAttempt(ctx context.Context, done chan struct{}) {
	rv := c.resolver
	raw, err := rv.resolve(ctx)
	var ep *endpoint
	if err == nil {
		ep, err = c.cfg.parseEndpoint(raw)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if err == nil {
		c.ep.Store(ep)
		rv.err = nil
	} else {
		rv.err = err
		rv.backoff = min(max(2*rv.backoff, DeferredBackoffMin), DeferredBackoffMax)
		jitter := time.Duration(rand.Int64N(int64(rv.backoff) / 4))
		rv.next = c.cfg.now().Add(rv.backoff - jitter)
	}
	rv.cancel() // the attempt's context: its timer
	rv.attempt, rv.cancel = nil, nil
	close(done)
}

// Ready reports whether the Client knows its introspection endpoint: nil
// at once for a Client made by [New], or one made by [NewDeferred] once an
// attempt has succeeded. Otherwise it waits for the running attempt, or
// starts one when the backoff allows, and returns nil if it succeeds, or
// the attempt's error (matching [ErrNotReady]) if it fails or ctx ends
// first. It is safe for concurrent use; readiness probes may call it as
// often as they like: attempts stay one at a time, within the backoff.
func (c *Client) Ready(ctx context.Context) error {
	if c.ep.Load() != nil {
		return nil
	}
	done, err := c.resolveAttempt()
	if done == nil {
		if c.ep.Load() != nil {
			return nil
		}
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", err, ctx.Err())
	}
	if c.ep.Load() != nil {
		return nil
	}
	c.resolver.mu.Lock()
	defer c.resolver.mu.Unlock()
	return &UnavailableError{Reason: "resolving the introspection endpoint failed: " + c.resolver.err.Error(), RetryAfter: c.resolver.next.Sub(c.cfg.now()), Err: ErrNotReady}
}

package middleware

import (
	"context"
	"net/http"
	"time"

	"github.com/tokenguard/tokenguard/introspect"
)

// invalidationWatcher is implemented by [*introspect.Client]: a channel
// closed once the cached decision for a token is invalidated (the token, its
// subject, its jti, a purge; here or on another replica).
type invalidationWatcher interface {
	Watch(token string, r *introspect.Response) (invalidated <-chan struct{}, stop func())
}

// Stream returns a decorator for long-lived requests (Server-Sent Events,
// WebSocket upgrades, long polls): it protects a handler as
// [Middleware.Require] does, and the handler's context is also cancelled
// when the token expires (exp plus the leeway) or its cached decision is
// invalidated ([Middleware.Watch]), so that a revoked user's open stream
// ends at once. The handler MUST return when its context is done;
// context.Cause tells why (an [*Error]). A response under way cannot turn
// into a 401: the stream just ends, and the client's reconnection is decided
// anew. Ordinary routes should use Require: Stream costs a timer, a
// goroutine and a watcher per request.
func (m *Middleware) Stream(reqs ...Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cc, err := m.decideRequest(w, r, reqs)
			switch {
			case err != nil:
				m.errorHandler(w, r, err)
			case cc == nil: // anonymous, with WithCredentialsOptional: nothing to watch
				next.ServeHTTP(w, r)
			default:
				ctx, cancel := m.watch(cc, reqs)
				defer cancel()
				next.ServeHTTP(w, r.WithContext(ctx))
			}
		})
	}
}

// Watch returns a context derived from ctx, which must carry claims from
// [Middleware.Check], [Middleware.Authenticate] or [Middleware.Require], that
// is cancelled when the token expires (exp plus the leeway, on the system's
// timer) or when its cached decision is invalidated: [introspect.Client]'s
// Invalidate, InvalidateSubject, InvalidateTokenID or Purge, a webhook event
// that calls them, or another replica's invalidation. The cause
// (context.Cause) is then an [*Error], 401 invalid_token, wrapping
// [ErrExpired] or [ErrRevoked]. Call the CancelFunc when the request ends.
//
// Invalidations are seen only with an Introspector that reports them, as
// [*introspect.Client] does; with others, and for claims made by
// [NewContext], Watch ends the context at expiry alone. A decision
// invalidated between the check and the call to Watch is made again at once
// (active, exp, nbf, aud and the validators, and reqs: pass the
// requirements the decision was made with, as [Middleware.Stream] does):
// the context ends if the token no longer passes. For an anonymous ctx (no
// claims) the context ends only with ctx. Watch is safe for concurrent use.
func (m *Middleware) Watch(ctx context.Context, reqs ...Requirement) (context.Context, context.CancelFunc) {
	return m.watch(ctx, reqs)
}

// watch is Watch; a decision invalidated before the watcher started is
// made again with reqs too.
func (m *Middleware) watch(ctx context.Context, reqs []Requirement) (context.Context, context.CancelFunc) {
	c, ok := ClaimsFromContext(ctx)
	if !ok {
		return context.WithCancel(ctx)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	exp := c.Expiry
	if c.resp != nil {
		exp = c.resp.Expiration.AsTime() // not a field the handler may have changed
	}
	var timer *time.Timer
	if !exp.IsZero() {
		if d := exp.Add(m.cfg.leeway).Sub(m.cfg.now()); d <= 0 {
			cancel(m.invalid(ErrExpired, "token has expired"))
		} else {
			timer = time.AfterFunc(d, func() { cancel(m.invalid(ErrExpired, "token has expired")) })
		}
	}
	if w, ok := m.in.(invalidationWatcher); ok && c.token != "" && c.resp != nil && wctx.Err() == nil {
		invalidated, stop := w.Watch(c.token, c.resp)
		if err := m.stillAccepted(wctx, c, reqs); err != nil {
			cancel(err)
		}
		go func() {
			select {
			case <-invalidated:
				cancel(m.invalid(ErrRevoked, "token is no longer accepted; authenticate again"))
			case <-wctx.Done():
			}
			stop()
		}()
	}
	return wctx, func() {
		if timer != nil {
			timer.Stop()
		}
		cancel(context.Canceled)
	}
}

// stillAccepted closes the window between the decision and the watcher's
// start, once the watcher runs: an invalidation in it dropped or replaced
// the cached result, so unless the cache still holds the result decided on,
// the token is decided on again (from the cache, or the server). It
// returns why the request must end, or nil. A server that cannot answer
// ends it too (503): the decision it was opened on may have been
// invalidated, and outages fail closed.
func (m *Middleware) stillAccepted(ctx context.Context, c *Claims, reqs []Requirement) *Error {
	ci := m.cached
	if ci == nil {
		return nil
	}
	if r, hit := ci.Cached(ctx, c.token); hit && r == c.resp {
		return nil
	}
	r, _ := RequestFromContext(ctx)
	_, err := m.check(ctx, r, c.token, reqs)
	if err != nil && err.StatusCode != http.StatusServiceUnavailable {
		return m.invalid(ErrRevoked, "token is no longer accepted; authenticate again")
	}
	return err
}

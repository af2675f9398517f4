package events

import (
	"context"
	"log/slog"
	"time"
)

// Defaults for a [Handler].
const (
	DefaultTolerance = 5 * time.Minute
	MaxBodySize      = 64 << 10
)

// Option configures a [Handler].
type Option func(*Handler)

// WithTolerance sets how far a signature's timestamp may be from now.
// Default: [DefaultTolerance].
func WithTolerance(d time.Duration) Option { return func(h *Handler) { h.tolerance = d } }

// WithLogger sets where refused requests, unresolved events and
// invalidations are logged. Default, and when l is nil: [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithClock sets the clock for the timestamp check and the log rate limit.
// Default: [time.Now].
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// Resolver finds the user whose access an event ends when the Handler
// cannot: see [WithResolver]. It returns the user ID to invalidate, or ""
// for none. Implementations must be safe for concurrent use.
type Resolver func(ctx context.Context, e *Event) (subject string, err error)

// WithResolver sets what the Handler calls for an accepted event that ends
// access but whose user it does not know: a user grant event for a grant
// whose user.grant.added it has not seen, oidc_session.access_token.revoked
// or session.terminated for a session whose oidc_session.added it has not
// seen, and project or org deactivation or removal, which name no user.
// Look the grant (e.AggregateID) or session up with ZITADEL's API and
// return its user ID, or act yourself and return "" (e.g. call
// guard.Client().Purge() when e.AggregateID is the API's own project). ctx
// is the webhook request's. An error answers 503, so that ZITADEL sees the
// call failed, and is logged. Default: none; such events are logged at
// Warn, at most once a second, and change nothing.
func WithResolver(r Resolver) Option { return func(h *Handler) { h.resolve = r } }

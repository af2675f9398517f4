package middleware

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// DefaultLeeway is the clock skew allowed when checking exp and nbf.
const DefaultLeeway = 5 * time.Second

// DefaultRealm is the realm of WWW-Authenticate challenges.
const DefaultRealm = "api"

// Option configures a [Middleware].
type Option func(*config)

type config struct {
	audiences    []string
	projectID    string
	leeway       time.Duration
	realm        string
	errorHandler ErrorHandler
	optional     bool
	logger       *slog.Logger
	meters       metric.MeterProvider
	now          func() time.Time
	systemClock  bool // now is time.Now: no WithClock
}

// WithAudience adds audiences the token's aud may contain instead of the one
// passed to [New]. With ZITADEL, add the API application's client ID:
// personal access tokens carry only that.
func WithAudience(aud ...string) Option {
	return func(c *config) { c.audiences = append(c.audiences, aud...) }
}

// WithProjectID names the ZITADEL project whose roles [Role] and friends
// check (claim urn:zitadel:iam:org:project:{id}:roles, falling back to
// urn:zitadel:iam:org:project:roles) and whose audience scope error
// descriptions tell clients to request. Default: none, so only the generic
// roles claim is read and descriptions name no ZITADEL scope.
func WithProjectID(id string) Option { return func(c *config) { c.projectID = id } }

// WithLeeway allows for clock skew when checking exp and nbf. Default:
// [DefaultLeeway] (5 s). Cached results never outlive exp either way.
func WithLeeway(d time.Duration) Option { return func(c *config) { c.leeway = d } }

// WithRealm sets the realm of WWW-Authenticate challenges. Default:
// [DefaultRealm]. It has no effect with [WithErrorHandler].
func WithRealm(realm string) Option { return func(c *config) { c.realm = realm } }

// WithErrorHandler replaces [DefaultErrorHandler] for refused requests. A
// nil h keeps the default.
func WithErrorHandler(h ErrorHandler) Option { return func(c *config) { c.errorHandler = h } }

// WithCredentialsOptional lets requests without any bearer token through to
// handlers that have no requirements, with no claims in their context.
// Requests with a token are checked as usual, and a bad token is still
// refused. Default: off, a missing token is refused with 401.
func WithCredentialsOptional() Option { return func(c *config) { c.optional = true } }

// WithLogger sets the logger for configuration errors (logged at Error) and
// an unavailable authorization server (Warn), each at most once a second
// with a count of the lines held back, so that an outage cannot flood the
// logs. Default: [slog.Default]; a nil l keeps the default, as in every
// tokenguard package. Tokens and keys are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithMeterProvider sets where the tokenguard.decisions counter (requests
// by outcome: allowed, no_token, invalid_request, invalid_token,
// insufficient_scope, unavailable, error) goes. Default: the global
// OpenTelemetry provider, a no-op until the application installs one; a nil
// mp keeps the default.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.meters = mp } }

// WithClock sets the clock for exp and nbf checks. Default: [time.Now]; a
// nil now keeps the default, as introspect.WithClock does.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now, c.systemClock = now, false
		}
	}
}

package middleware

import (
	"context"
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
	audiences []string
	projectID string
	leeway    time.Duration
	realm     string
	// resourceMetadata is the RFC 9728 metadata URL for 401 challenges.
	resourceMetadata string
	errorHandler     ErrorHandler
	optional         bool
	logger           *slog.Logger
	meters           metric.MeterProvider
	now              func() time.Time
	systemClock      bool // now is time.Now: no WithClock
	validators       []func(context.Context, *Claims) error
	sources          []TokenSource // nil: the Authorization header
}

// WithAudience adds audiences the token's aud may contain instead of the one
// passed to [New]. With ZITADEL, add the API application's client ID:
// personal access tokens carry only that.
func WithAudience(aud ...string) Option {
	return func(c *config) { c.audiences = append(c.audiences, aud...) }
}

// WithProjectID names the ZITADEL project whose roles [Role] and friends
// check (claim urn:zitadel:iam:org:project:{id}:roles; the generic
// urn:zitadel:iam:org:project:roles only when the response has no
// project-specific claim at all, see [introspect.Response.RolesFor]) and
// whose audience scope error
// descriptions tell clients to request. Default: none, so only the generic
// roles claim of introspection answers is read (a local JWT decision has no
// roles then: role requirements ask the server) and descriptions name no
// ZITADEL scope. Set it: tokenguard.New always does.
func WithProjectID(id string) Option { return func(c *config) { c.projectID = id } }

// WithLeeway allows for clock skew when checking exp and nbf. Default:
// [DefaultLeeway] (5 s). Cached results never outlive exp either way.
func WithLeeway(d time.Duration) Option { return func(c *config) { c.leeway = d } }

// WithRealm sets the realm of WWW-Authenticate challenges. Default:
// [DefaultRealm]. It has no effect with [WithErrorHandler].
func WithRealm(realm string) Option { return func(c *config) { c.realm = realm } }

// WithResourceMetadata makes every 401 challenge of [DefaultErrorHandler]
// carry resource_metadata="url" (RFC 9728 §5.1), so that OAuth and MCP
// clients can find this API's protected resource metadata and, through
// it, the authorization server: pass the URL the document is served at
// (package resourcemeta's Handler.URL). Default: none. It has no effect
// with [WithErrorHandler]. [New] refuses a url that is not an absolute
// http(s) URL of printable ASCII without quotes or backslashes.
func WithResourceMetadata(url string) Option { return func(c *config) { c.resourceMetadata = url } }

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

// WithValidator adds a check that every token must pass, on every route and
// request, cached or not, after active, exp, nbf and aud and before the
// route's requirements: a client ID allow-list, a policy for delegated
// (act) tokens, a token_type. ctx carries the claims and, over HTTP, the
// request ([RequestFromContext]). A non-nil error refuses the token with 401
// invalid_token, wrapping [ErrPolicy]; return an [*Error] to control the
// response. Validators run in the order added and must be safe for
// concurrent use; [Claims.Response] gives the claims that have no field, at
// the cost of a copy. A nil v is ignored. Default: none.
func WithValidator(v func(ctx context.Context, c *Claims) error) Option {
	return func(c *config) {
		if v != nil {
			c.validators = append(c.validators, v)
		}
	}
}

// WithTokenSource sets where the middleware looks for the bearer token,
// replacing the default, the Authorization header alone
// ([FromAuthorization]): name it among sources to keep it. A request may use
// exactly one of them (RFC 6750 §2): a token in two is refused with 400
// invalid_request, as two Authorization headers are. Default:
// FromAuthorization(). [FromQuery] is off unless named here.
func WithTokenSource(sources ...TokenSource) Option {
	return func(c *config) { c.sources = append([]TokenSource{}, sources...) }
}

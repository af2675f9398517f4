package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"
	"unique"

	"github.com/tokenguard/tokenguard/internal/telemetry"
	"github.com/tokenguard/tokenguard/introspect"
)

// Introspector reports what the authorization server knows about a token:
// the response for an active token, an error matching
// [introspect.ErrInactive] for an inactive one, [introspect.ErrUnavailable]
// when it cannot tell. [*introspect.Client] implements it. Implementations
// must be safe for concurrent use.
type Introspector interface {
	Introspect(ctx context.Context, token string) (*introspect.Response, error)
}

// cachedIntrospector is implemented by [*introspect.Client]: a look at its
// own cache that never reaches the server. A token found there passed every
// check that guards the server when it was introspected, so a hit skips
// them; the checks on the result (active, exp, nbf, aud, requirements) run
// either way. With the system clock on both sides, a hit reads the clock
// once.
type cachedIntrospector interface {
	Cached(ctx context.Context, token string) (*introspect.Response, bool)
	CachedAt(ctx context.Context, token string, now time.Time) (*introspect.Response, bool)
}

// confirmer is implemented by [*introspect.Client]: the server's answer
// about a token, never a local decision (introspect.WithLocalJWT). A
// validator or requirement that refuses a local result is asked again on
// it, since a JWT may lack claims (roles, scopes) that introspection gives.
type confirmer interface {
	Confirm(ctx context.Context, token string) (*introspect.Response, error)
}

// Middleware decides for each request whether its bearer token is good for
// this API: active, within exp and nbf, with an audience of this API, and
// meeting the route's requirements. A Middleware is safe for concurrent use.
type Middleware struct {
	in           Introspector
	cached       cachedIntrospector // in, when it has a cache to look at; nil otherwise
	cfg          config
	errorHandler ErrorHandler
	metrics      *telemetry.Metrics

	// Failures of the authorization server are logged at most once a
	// second per kind, with a count of those left out, so that an outage
	// does not flood the logs with one line per request.
	logUnavailable, logConfig rateLimitedLog

	hint string // appended to invalid_token descriptions: how to get a good token
}

// New returns a Middleware that asks in about tokens and accepts those whose
// aud contains audience (with ZITADEL: the API's project ID) or one of the
// audiences added by [WithAudience]. A nil in or an empty audience is an
// error.
func New(in Introspector, audience string, opts ...Option) (*Middleware, error) {
	if in == nil {
		return nil, errors.New("middleware: nil Introspector")
	}
	if audience == "" {
		return nil, errors.New("middleware: empty audience")
	}
	cfg := config{
		audiences:   []string{audience},
		leeway:      DefaultLeeway,
		realm:       DefaultRealm,
		logger:      slog.Default(),
		now:         time.Now,
		systemClock: true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.audiences = slices.DeleteFunc(cfg.audiences, func(s string) bool { return s == "" })
	// Interned as introspect interns the audiences and project IDs of
	// responses: the comparisons on every request then match by pointer,
	// without reading the bytes of a cached response.
	for i, a := range cfg.audiences {
		cfg.audiences[i] = unique.Make(a).Value()
	}
	cfg.projectID = unique.Make(cfg.projectID).Value()
	if err := checkMetadataURL(cfg.resourceMetadata); err != nil {
		return nil, err
	}
	if cfg.leeway < 0 {
		return nil, fmt.Errorf("middleware: negative leeway %v", cfg.leeway)
	}
	if cfg.sources != nil && !slices.ContainsFunc(cfg.sources, func(s TokenSource) bool { return s.find != nil }) {
		return nil, errors.New("middleware: WithTokenSource without a token source")
	}
	m := &Middleware{in: in, cfg: cfg, errorHandler: cfg.errorHandler, metrics: telemetry.New(cfg.meters, nil)}
	m.cached, _ = in.(cachedIntrospector) // asserted once, not per request
	if m.errorHandler == nil {
		m.errorHandler = defaultErrorHandler(cfg.realm, cfg.resourceMetadata)
	}
	if cfg.projectID != "" {
		m.hint = "; request the token with scope urn:zitadel:iam:org:project:id:" + cfg.projectID + ":aud"
	}
	return m, nil
}

// checkMetadataURL refuses a resource metadata URL that could not stand
// as it is in a challenge parameter.
func checkMetadataURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	bad := err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == ""
	for i := 0; i < len(raw) && !bad; i++ {
		bad = raw[i] <= 0x20 || raw[i] > 0x7e || raw[i] == '"' || raw[i] == '\\'
	}
	if bad {
		return fmt.Errorf("middleware: resource metadata URL %q is not an absolute http(s) URL of printable ASCII without quotes or backslashes", raw)
	}
	return nil
}

// Wrap protects next: it serves only requests with an acceptable token, with
// the [Claims] in the request context. It is Require() with no requirements.
func (m *Middleware) Wrap(next http.Handler) http.Handler { return m.Require()(next) }

// Require returns a decorator that protects a handler like [Middleware.Wrap]
// and also checks reqs, in order, on every request.
func (m *Middleware) Require(reqs ...Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cc, err := m.decideRequest(w, r, reqs)
			switch {
			case err != nil:
				m.errorHandler(w, r, err)
			case cc == nil: // anonymous, with WithCredentialsOptional
				next.ServeHTTP(w, r)
			default:
				next.ServeHTTP(w, r.WithContext(cc))
			}
		})
	}
}

// Authenticate checks r as [Middleware.Require] would, for frameworks that
// do not use net/http decorators. It returns the context to serve r with:
// r's context carrying the [Claims], or r's context itself for an anonymous
// request let through by [WithCredentialsOptional]; pass a refusal to
// [Middleware.WriteError]. On refusal the context is r's.
func (m *Middleware) Authenticate(r *http.Request, reqs ...Requirement) (context.Context, *Error) {
	cc, err := m.decideRequest(nil, r, reqs)
	if err != nil || cc == nil {
		return r.Context(), err
	}
	return cc, nil
}

// Check decides for a token from any transport, as [Middleware.Require]
// does for HTTP: the token must be active, within exp and nbf, for this
// API's audience, and accepted by the validators ([WithValidator]) and reqs.
// On success the returned context is ctx carrying the [Claims]; requirements
// see no HTTP request ([RequestFromContext] reports false) unless ctx
// carries one. An empty token is a 401 without error code (wrapping
// [ErrNoToken]), or ctx itself, anonymous, with [WithCredentialsOptional] and
// no reqs; a token over [MaxTokenSize] or outside RFC 6750's b64token set is
// a 400. Transports extract the token with [ParseAuthorization]. On refusal
// the context is ctx. Check is safe for concurrent use.
func (m *Middleware) Check(ctx context.Context, token string, reqs ...Requirement) (context.Context, *Error) {
	cc, err := m.decide(ctx, nil, token, reqs)
	if err != nil || cc == nil {
		return ctx, err
	}
	return cc, nil
}

// WriteError writes the response for an error from [Middleware.Authenticate]
// with the configured [ErrorHandler].
func (m *Middleware) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	m.errorHandler(w, r, err)
}

// decideRequest finds r's token and decides for it. w, if not nil, gets
// Cache-Control: private for a token from the query (RFC 6750 §2.3).
func (m *Middleware) decideRequest(w http.ResponseWriter, r *http.Request, reqs []Requirement) (*claimsContext, *Error) {
	token, fromQuery, err := m.tokenOf(r)
	if err != nil {
		m.metrics.Decision(r.Context(), outcomeOf(err))
		return nil, err
	}
	if fromQuery && w != nil && w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "private")
	}
	return m.decide(r.Context(), r, token, reqs)
}

// decide is check, counted by outcome and by the source of the result it
// rests on (local or introspected); a request refused before any result
// was looked up has no source.
func (m *Middleware) decide(ctx context.Context, r *http.Request, token string, reqs []Requirement) (*claimsContext, *Error) {
	src := telemetry.Introspected
	cc, err := m.checkFrom(ctx, r, token, reqs, &src)
	outcome := telemetry.Allowed
	if err != nil {
		outcome = outcomeOf(err)
	}
	if outcome == telemetry.NoToken || outcome == telemetry.InvalidRequest {
		m.metrics.Decision(ctx, outcome)
	} else {
		m.metrics.DecisionFrom(ctx, outcome, src)
	}
	return cc, err
}

func outcomeOf(e *Error) telemetry.Outcome {
	switch {
	case e.StatusCode == http.StatusUnauthorized && e.Code == "":
		return telemetry.NoToken
	case e.StatusCode == http.StatusBadRequest:
		return telemetry.InvalidRequest
	case e.StatusCode == http.StatusUnauthorized:
		return telemetry.InvalidToken
	case e.StatusCode == http.StatusForbidden:
		return telemetry.InsufficientScope
	case e.StatusCode == http.StatusServiceUnavailable:
		return telemetry.Unavailable
	}
	return telemetry.ServerError
}

func noToken() *Error {
	return &Error{StatusCode: http.StatusUnauthorized, Description: "missing bearer token", Err: ErrNoToken}
}

// check decides for token. It returns the request's new context, which
// carries the claims (one allocation for both), or nil for an anonymous
// request. r is nil outside HTTP.
func (m *Middleware) check(ctx context.Context, r *http.Request, token string, reqs []Requirement) (*claimsContext, *Error) {
	return m.checkFrom(ctx, r, token, reqs, nil)
}

// checkFrom is check; src, if not nil, is set to where the result decided
// on came from.
func (m *Middleware) checkFrom(ctx context.Context, r *http.Request, token string, reqs []Requirement, src *telemetry.Source) (*claimsContext, *Error) {
	if token == "" {
		if m.cfg.optional && len(reqs) == 0 {
			return nil, nil
		}
		return nil, noToken()
	}
	if len(token) > MaxTokenSize {
		return nil, badRequest(errTooLarge)
	}
	var resp *introspect.Response
	hit := false
	now := m.cfg.now()
	if ci := m.cached; ci != nil {
		if m.cfg.systemClock {
			resp, hit = ci.CachedAt(ctx, token, now)
		} else {
			resp, hit = ci.Cached(ctx, token)
		}
	}
	if !hit {
		if !isB64Token(token) { // only tokens that could be valid reach the server
			return nil, badRequest(errNotB64Token)
		}
		var err error
		if resp, err = m.in.Introspect(ctx, token); err != nil {
			if src != nil && errors.As(err, new(*introspect.JWTError)) {
				*src = telemetry.Local
			}
			return nil, m.introspectionError(ctx, err)
		}
		now = m.cfg.now() // the call may have taken a while
	}
	if src != nil && resp.Local() {
		*src = telemetry.Local
	}
	if err := m.validate(resp, now); err != nil {
		return nil, err
	}
	cc, err := m.admit(ctx, r, token, resp, reqs)
	if err == nil || !resp.Local() {
		return cc, err
	}
	c, ok := m.in.(confirmer)
	if !ok {
		return nil, err
	}
	// A local decision carries the JWT's claims only: ZITADEL puts roles
	// in it only when the project asserts them. Ask the server, and decide
	// on its answer.
	if resp, cerr := c.Confirm(ctx, token); cerr != nil {
		err = m.introspectionError(ctx, cerr)
	} else if err = m.validate(resp, m.cfg.now()); err == nil {
		cc, err = m.admit(ctx, r, token, resp, reqs)
	}
	if src != nil {
		*src = telemetry.Introspected
	}
	return cc, err
}

// admit runs the validators and the route's requirements on an accepted
// result, in the request's new context.
func (m *Middleware) admit(ctx context.Context, r *http.Request, token string, resp *introspect.Response, reqs []Requirement) (*claimsContext, *Error) {
	cc := &claimsContext{Context: ctx, req: r, claims: claimsOf(resp, m.cfg.projectID)}
	cc.claims.token = token
	for _, v := range m.cfg.validators {
		if err := v(cc, &cc.claims); err != nil {
			return nil, refusal(err, http.StatusUnauthorized, CodeInvalidToken, "token is not accepted by this API", ErrPolicy)
		}
	}
	for _, req := range reqs {
		if err := req(cc, &cc.claims); err != nil {
			return nil, refusal(err, http.StatusForbidden, CodeInsufficientScope, "token lacks a required permission", ErrForbidden)
		}
	}
	return cc, nil
}

// refusal is err if it is an [*Error], else a generic one wrapping
// sentinel and err: a custom check's message never reaches the client.
func refusal(err error, status int, code, desc string, sentinel error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e
	}
	return &Error{StatusCode: status, Code: code, Description: desc, Err: fmt.Errorf("%w: %w", sentinel, err)}
}

// validate applies the checks that hold for every route: active, exp, nbf and
// audience. They run on every request, cached result or not.
func (m *Middleware) validate(resp *introspect.Response, now time.Time) *Error {
	if !resp.Active {
		return m.inactive(ErrInactive)
	}
	if exp := resp.Expiration.AsTime(); !exp.IsZero() && !now.Before(exp.Add(m.cfg.leeway)) {
		return m.invalid(ErrExpired, "token has expired")
	}
	if nbf := resp.NotBefore.AsTime(); !nbf.IsZero() && now.Add(m.cfg.leeway).Before(nbf) {
		return m.invalid(ErrNotYetValid, "token is not valid yet")
	}
	for _, aud := range m.cfg.audiences {
		if resp.HasAudience(aud) {
			return nil
		}
	}
	return m.invalid(ErrAudience, "token audience does not include this API"+m.hint)
}

func (m *Middleware) inactive(err error) *Error {
	return m.invalid(err, "token is not active: expired, revoked, or not issued for this API"+m.hint)
}

func badRequest(why malformedError) *Error {
	return &Error{StatusCode: http.StatusBadRequest, Code: CodeInvalidRequest, Description: string(why), Err: why}
}

func (m *Middleware) invalid(err error, desc string) *Error {
	return &Error{StatusCode: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, Err: err}
}

func (m *Middleware) introspectionError(ctx context.Context, err error) *Error {
	var je *introspect.JWTError
	switch {
	case errors.As(err, &je):
		// Refused by local verification: say why (expired, not valid yet
		// by this API's clock, another issuer, a bad signature), not that
		// the server found the token inactive.
		return m.invalid(fmt.Errorf("%w: %w", ErrInactive, err), "JWT access token refused: "+je.Reason)
	case errors.Is(err, introspect.ErrInactive):
		return m.inactive(fmt.Errorf("%w: %w", ErrInactive, err))
	case errors.As(err, new(*introspect.RedirectError)):
		// The endpoint is misconfigured (it moved): a configuration error
		// for the operator, 503 for the caller.
		if n, ok := m.logConfig.allow(m.cfg.now()); ok {
			m.cfg.logger.ErrorContext(ctx, "tokenguard: configuration problem: the authorization server answered with a redirect, which tokenguard never follows; configure the endpoint's final URL", "error", err.Error(), "suppressed", n)
		}
		return m.unavailable(err)
	case errors.Is(err, introspect.ErrUnavailable):
		if n, ok := m.logUnavailable.allow(m.cfg.now()); ok {
			m.cfg.logger.WarnContext(ctx, "tokenguard: authorization server unavailable", "error", err.Error(), "suppressed", n)
		}
		return m.unavailable(err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The caller hung up, or its own deadline passed: nothing to say
		// about the server, so nothing is logged.
		return m.unavailable(err)
	case errors.Is(err, introspect.ErrClientAuth):
		if n, ok := m.logConfig.allow(m.cfg.now()); ok {
			m.cfg.logger.ErrorContext(ctx, "tokenguard: the authorization server rejected this API's client authentication; check the key file (is the key deleted or expired, is it the API application's key?) and the issuer", "error", err.Error(), "suppressed", n)
		}
	default:
		if n, ok := m.logConfig.allow(m.cfg.now()); ok {
			m.cfg.logger.ErrorContext(ctx, "tokenguard: introspection failed", "error", err.Error(), "suppressed", n)
		}
	}
	return &Error{StatusCode: http.StatusInternalServerError, Description: "internal error", Err: fmt.Errorf("%w: %w", ErrMisconfigured, err)}
}

func (m *Middleware) unavailable(err error) *Error {
	return &Error{StatusCode: http.StatusServiceUnavailable, Description: "authorization server unavailable; retry later", RetryAfter: introspect.RetryAfter(err), Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
}

// rateLimitedLog lets one log line through per second and counts the rest.
type rateLimitedLog struct {
	last       atomic.Int64 // Unix ns of the last line let through
	suppressed atomic.Int64 // lines held back since then
}

// allow reports whether to log now, and how many lines were held back
// since the last one.
func (l *rateLimitedLog) allow(now time.Time) (int64, bool) {
	t := now.UnixNano()
	last := l.last.Load()
	if t-last < int64(time.Second) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

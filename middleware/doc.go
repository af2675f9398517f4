// Package middleware protects net/http handlers with OAuth 2.0 bearer tokens
// (RFC 6750) checked by token introspection (RFC 7662).
//
// https://www.rfc-editor.org/rfc/rfc6750
//
// For each request it extracts the bearer token, asks an [Introspector]
// (normally a caching [github.com/tokenguard/tokenguard/introspect.Client]),
// and accepts the token only if it is active, within exp and nbf, and its aud
// names this API; then each route's [Requirement] values (project roles,
// scopes) are checked. Handlers read the caller from the request context:
//
//	mw, err := middleware.New(client, projectID, middleware.WithProjectID(projectID))
//	mux.Handle("/api/", mw.Wrap(api))
//	mux.Handle("/api/admin", mw.Require(middleware.Role("admin"))(admin))
//	claims, ok := middleware.ClaimsFromContext(r.Context()) // in a handler
//
// Frameworks other than net/http call [Middleware.Authenticate], which
// returns the context to serve the request with, and [Middleware.WriteError].
// Other transports (gRPC, message queues) extract the token with
// [ParseAuthorization] and decide with [Middleware.Check]. Requirements see
// the request through their context ([RequestFromContext], [MatchRequest]);
// [WithValidator] refuses tokens for every route; [WithTokenSource] reads
// tokens from cookies or, for browser streams, the query. Long-lived
// requests use [Middleware.Stream] or [Middleware.Watch], whose context ends
// when the token expires or its cached decision is invalidated.
//
// Refusals follow RFC 6750 §3: 401 with a bare Bearer challenge when there is
// no token; 400 invalid_request for a malformed, duplicated or oversized
// Authorization header, or a token sent in two ways; 401 invalid_token for an inactive, expired, not yet
// valid or foreign-audience token; 403 insufficient_scope for a missing role
// or scope; 503 with Retry-After when the authorization server cannot be
// reached (never 401, never 200); 500 when it rejects this API's own
// credentials, logged as a configuration error.
//
// # Caching
//
// The middleware caches nothing itself; the introspect.Client does. The
// checks above run on every request, cached result or not, so a cached token
// is refused as soon as its exp passes and a route's requirements always
// apply.
//
// # Security
//
// Error descriptions are fixed texts that MUST NOT carry the token or
// upstream details; challenge parameters drop control characters, so that no
// header can be injected, and keep to RFC 6750's grammar. The token is never
// logged. Tokens that cannot be valid are refused before any introspection.
// Cached results are shared by every request with the same token, so
// handlers get them read-only: [Claims] holds plain values and read-only
// [introspect.Roles], and returns copies of everything else.
package middleware

package middleware

import (
	"context"
	"net/http"
	"time"

	"github.com/tokenguard/tokenguard/introspect"
)

// Claims is what a handler learns about the caller of an accepted request.
// The fields are plain values: each request gets its own Claims, so a
// handler may change them without affecting any other request. The rest of
// the introspection result, which the cache shares between requests, is
// reachable only through methods that return copies or read-only values
// ([Claims.Scopes], [Claims.Response], [introspect.Roles]): no handler can
// change what a later request with the same token is decided on. Reading
// Claims is safe for concurrent use.
type Claims struct {
	Subject  string           // sub: the user or service user
	ClientID string           // client_id: the client the token was issued to
	Username string           // username
	OrgID    string           // urn:zitadel:iam:user:resourceowner:id
	Roles    introspect.Roles // the project's roles (see WithProjectID); read-only
	Expiry   time.Time        // exp; zero if the server sent none

	resp  *introspect.Response // shared with the cache: never handed out
	token string               // for Watch; never handed out
}

// NewClaims returns the claims that the middleware hands to handlers for the
// introspection result r, with the roles of the project projectID ("" for
// the generic roles claim). Handler tests use it with [introspect.Decode] to
// build claims with scopes or other claims; a nil r gives empty claims.
func NewClaims(r *introspect.Response, projectID string) *Claims {
	if r == nil {
		return &Claims{}
	}
	c := claimsOf(r, projectID)
	return &c
}

// claimsOf returns the claims of r with the roles of projectID; the
// middleware builds each request's claims with it.
func claimsOf(r *introspect.Response, projectID string) Claims {
	return Claims{
		Subject:  r.Subject,
		ClientID: r.ClientID,
		Username: r.Username,
		OrgID:    r.OrgID,
		Roles:    r.RolesFor(projectID),
		Expiry:   r.Expiration.AsTime(),
		resp:     r,
	}
}

// Scopes returns the granted scopes in a new slice that the caller may
// modify; nil for claims built without an introspection result.
func (c *Claims) Scopes() []string {
	if c.resp == nil {
		return nil
	}
	return c.resp.Scopes()
}

// HasScope reports whether scope was granted.
func (c *Claims) HasScope(scope string) bool { return c.resp != nil && c.resp.HasScope(scope) }

// Actor returns who acts on the subject's behalf when the token is
// delegated (the act claim of RFC 8693 token exchange), and false when
// there is no act claim or its actor names no subject. To decide whether a
// token is delegated, use [Claims.Delegated].
func (c *Claims) Actor() (introspect.Actor, bool) {
	if c.resp == nil {
		return introspect.Actor{}, false
	}
	return c.resp.Actor()
}

// Delegated reports whether the token carries an act claim (RFC 8693 token
// exchange), whatever its shape. See [NotDelegated] to refuse delegated
// tokens on a route, or [WithValidator] to refuse them everywhere.
func (c *Claims) Delegated() bool { return c.resp != nil && c.resp.Delegated() }

// Response returns a copy of the whole introspection result, for claims
// with no field here (token_type, iss, jti, private claims through
// [introspect.Response.Claims]). Changing the copy changes nothing else.
// Each call allocates the copy. It returns nil for claims built without an
// introspection result (a literal in a test).
func (c *Claims) Response() *introspect.Response {
	if c.resp == nil {
		return nil
	}
	return c.resp.Clone()
}

type (
	ctxKey     struct{}
	requestKey struct{}
)

// claimsContext carries Claims, and the HTTP request being decided, in the
// same allocation as the context node.
type claimsContext struct {
	context.Context
	req    *http.Request // nil outside HTTP
	claims Claims
}

func (c *claimsContext) Value(key any) any {
	switch key.(type) {
	case ctxKey:
		return &c.claims
	case requestKey:
		if c.req != nil {
			return c.req
		}
	}
	return c.Context.Value(key)
}

// RequestFromContext returns the HTTP request that a [Requirement] or a
// validator ([WithValidator]) is deciding on, so that it can compare the
// claims with a path parameter or a header. It reports false outside HTTP
// ([Middleware.Check]). The request is the one the middleware received; a
// handler has its own.
func RequestFromContext(ctx context.Context) (*http.Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*http.Request)
	return r, ok
}

// NewContext returns a copy of ctx that carries a copy of c. Handler tests use
// it to call handlers without a middleware or a server.
// A nil c stores empty claims (no subject, no roles), so that a handler
// test cannot panic on it.
func NewContext(ctx context.Context, c *Claims) context.Context {
	if c == nil {
		return &claimsContext{Context: ctx}
	}
	return &claimsContext{Context: ctx, claims: *c}
}

// ClaimsFromContext returns the claims stored by the middleware or by
// [NewContext]. It reports false for anonymous requests let through by
// [WithCredentialsOptional].
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

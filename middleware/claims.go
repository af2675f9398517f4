package middleware

import (
	"context"
	"slices"
	"time"

	"github.com/tokenguard/tokenguard/introspect"
)

// Claims is what a handler learns about the caller of an accepted request.
// The fields come from the introspection response; Response holds all of it,
// including claims with no field here. Claims may share memory with cached
// responses: handlers MUST NOT modify them.
type Claims struct {
	Subject  string           // sub: the user or service user
	ClientID string           // client_id: the client the token was issued to
	Username string           // username
	OrgID    string           // urn:zitadel:iam:user:resourceowner:id
	Scopes   []string         // scope, split on spaces
	Roles    introspect.Roles // the project's roles (see WithProjectID)
	Expiry   time.Time        // exp; zero if the server sent none
	Response *introspect.Response
}

// HasScope reports whether scope was granted.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

type ctxKey struct{}

// claimsContext carries Claims in the same allocation as the context node.
type claimsContext struct {
	context.Context
	claims Claims
}

func (c *claimsContext) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return &c.claims
	}
	return c.Context.Value(key)
}

// NewContext returns a copy of ctx that carries a copy of c. Handler tests use
// it to call handlers without a middleware or a server.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return &claimsContext{Context: ctx, claims: *c}
}

// ClaimsFromContext returns the claims stored by the middleware or by
// [NewContext]. It reports false for anonymous requests let through by
// [WithCredentialsOptional].
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

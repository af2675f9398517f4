package middleware

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// Requirement is a per-route check run after the token is accepted, on every
// request, cached or not. ctx carries the claims and, over HTTP, the request
// ([RequestFromContext]), so that a requirement can compare them with a path
// parameter; it ends with the request. A non-nil error refuses the request
// with 403 insufficient_scope; return an [*Error] to control the response,
// any other error gets a generic description (its text never reaches the
// client). Requirements must be safe for concurrent use and MUST NOT modify
// the request.
type Requirement func(ctx context.Context, c *Claims) error

// MatchRequest is a [Requirement] that compares the claims with the HTTP
// request, e.g. a path parameter with the caller's organization. Outside
// HTTP ([Middleware.Check] without a request) it refuses.
func MatchRequest(match func(r *http.Request, c *Claims) error) Requirement {
	return func(ctx context.Context, c *Claims) error {
		r, ok := RequestFromContext(ctx)
		if !ok {
			return forbidden("requires an HTTP request", "")
		}
		return match(r, c)
	}
}

func forbidden(desc, scope string) *Error {
	return &Error{StatusCode: http.StatusForbidden, Code: CodeInsufficientScope, Description: desc, Scope: scope, Err: ErrForbidden}
}

// NotDelegated refuses delegated tokens, those with an act claim (RFC 8693
// token exchange), with 403: the route serves only callers acting for
// themselves. To refuse them on every route, pass the same check to
// [WithValidator] instead (then 401):
//
//	middleware.WithValidator(func(ctx context.Context, c *middleware.Claims) error {
//		if c.Delegated() {
//			return errors.New("delegated tokens are not accepted")
//		}
//		return nil
//	})
func NotDelegated() Requirement {
	return func(_ context.Context, c *Claims) error {
		if c.Delegated() {
			return forbidden("delegated tokens are not accepted here", "")
		}
		return nil
	}
}

// Role requires the project role in any organization.
func Role(role string) Requirement {
	desc := "requires project role " + strconv.Quote(role)
	return func(_ context.Context, c *Claims) error {
		if c.Roles.Has(role) {
			return nil
		}
		return forbidden(desc, "")
	}
}

// AnyRole requires at least one of the project roles.
func AnyRole(roles ...string) Requirement {
	desc := "requires one of the project roles " + strings.Join(quoteAll(roles), ", ")
	return func(_ context.Context, c *Claims) error {
		for _, r := range roles {
			if c.Roles.Has(r) {
				return nil
			}
		}
		return forbidden(desc, "")
	}
}

// RoleInOrg requires the project role granted by the organization orgID.
func RoleInOrg(role, orgID string) Requirement {
	desc := "requires project role " + strconv.Quote(role) + " in organization " + strconv.Quote(orgID)
	return func(_ context.Context, c *Claims) error {
		if c.Roles.HasInOrg(role, orgID) {
			return nil
		}
		return forbidden(desc, "")
	}
}

// Scope requires every one of the scopes. The 403 names them in its scope
// parameter (RFC 6750 §3).
func Scope(scopes ...string) Requirement {
	all := strings.Join(scopes, " ")
	desc := "requires scope " + strconv.Quote(all)
	return func(_ context.Context, c *Claims) error {
		for _, s := range scopes {
			if !c.HasScope(s) {
				return forbidden(desc, all)
			}
		}
		return nil
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

package middleware

import (
	"net/http"
	"strconv"
	"strings"
)

// Requirement is a per-route check run after the token is accepted, on every
// request, cached or not. A non-nil error refuses the request with 403
// insufficient_scope; return an [*Error] to control the response, any other
// error gets a generic description.
type Requirement func(*Claims) error

func forbidden(desc, scope string) *Error {
	return &Error{StatusCode: http.StatusForbidden, Code: CodeInsufficientScope, Description: desc, Scope: scope, Err: ErrForbidden}
}

// Role requires the project role in any organization.
func Role(role string) Requirement {
	desc := "requires project role " + strconv.Quote(role)
	return func(c *Claims) error {
		if c.Roles.Has(role) {
			return nil
		}
		return forbidden(desc, "")
	}
}

// AnyRole requires at least one of the project roles.
func AnyRole(roles ...string) Requirement {
	desc := "requires one of the project roles " + strings.Join(quoteAll(roles), ", ")
	return func(c *Claims) error {
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
	return func(c *Claims) error {
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
	return func(c *Claims) error {
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

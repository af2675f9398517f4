package introspect

import (
	"bytes"
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"unique"
	"unsafe"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ZITADEL claim names that [Response] decodes into typed fields.
const (
	// ClaimRoles holds the roles a user has in the project the token was
	// requested for: role -> organization ID -> organization domain.
	ClaimRoles = "urn:zitadel:iam:org:project:roles"
	// ClaimOrgID is the ID of the organization that owns the user.
	ClaimOrgID = "urn:zitadel:iam:user:resourceowner:id"

	projectRolesPrefix = "urn:zitadel:iam:org:project:"
	projectRolesSuffix = ":roles"
)

// RoleGrant is one project role granted by one organization.
type RoleGrant struct {
	Role   string
	OrgID  string
	Domain string // the organization's primary domain
}

// Roles are the grants of a ZITADEL roles claim
// ({"role": {"orgID": "domain"}}), one entry per role and organization,
// sorted by role, then organization. Roles is a read-only value: cached
// results share their grants with every request, so there is no way to
// change them, only to read them ([Roles.All] yields copies). The zero Roles
// has no role. Roles is safe for concurrent use.
type Roles struct {
	grants []RoleGrant // never modified once built
}

// NewRoles returns Roles holding a copy of grants, sorted, each grant once.
// Handler tests use it to build the middleware's claims by hand.
func NewRoles(grants ...RoleGrant) Roles {
	if len(grants) == 0 {
		return Roles{}
	}
	g := slices.Clone(grants)
	slices.SortFunc(g, compareGrants)
	return Roles{grants: slices.Clip(slices.Compact(g))}
}

func compareGrants(a, b RoleGrant) int {
	if c := strings.Compare(a.Role, b.Role); c != 0 {
		return c
	}
	if c := strings.Compare(a.OrgID, b.OrgID); c != 0 {
		return c
	}
	return strings.Compare(a.Domain, b.Domain)
}

// Has reports whether role was granted by any organization.
func (r Roles) Has(role string) bool {
	return slices.ContainsFunc(r.grants, func(g RoleGrant) bool { return g.Role == role })
}

// HasInOrg reports whether role was granted by the organization orgID.
func (r Roles) HasInOrg(role, orgID string) bool {
	return slices.ContainsFunc(r.grants, func(g RoleGrant) bool { return g.Role == role && g.OrgID == orgID })
}

// Names returns the granted roles, sorted, each once, in a new slice that
// the caller may modify.
func (r Roles) Names() []string {
	names := make([]string, 0, len(r.grants))
	for _, g := range r.grants {
		names = append(names, g.Role)
	}
	return slices.Compact(names) // grants are sorted by role
}

// All yields a copy of each grant, in order.
func (r Roles) All() iter.Seq[RoleGrant] {
	return func(yield func(RoleGrant) bool) {
		for _, g := range r.grants {
			if !yield(g) {
				return
			}
		}
	}
}

// Len is the number of grants: one per role and organization.
func (r Roles) Len() int { return len(r.grants) }

// String lists the grants as role@orgID, for logs and test failures.
func (r Roles) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, g := range r.grants {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(g.Role)
		b.WriteByte('@')
		b.WriteString(g.OrgID)
	}
	b.WriteByte(']')
	return b.String()
}

// projectRoles are the roles of one project, from a
// urn:zitadel:iam:org:project:{projectID}:roles claim.
type projectRoles struct {
	projectID string
	roles     Roles
}

// Response is an introspection response (RFC 7662 §2.2), decoded once into
// compact typed fields. Every claim stays available through
// [Response.Claims]. aud may arrive as a string or an array, times as
// integers, floats or RFC 3339 strings; active must be the JSON boolean true.
//
// A Response returned by [Client.Introspect] is shared by every request
// that the cache answers with it. Its lists (audiences, scopes, roles) are
// unexported and read through methods that return copies or read-only
// values, so no reader can change them; the exported fields are plain
// values, and callers MUST NOT assign to them on a shared Response: take a
// [Response.Clone] to change one. Reading a Response is safe for concurrent
// use.
type Response struct {
	// The fields a guard reads on every request come first, so that they
	// share as few cache lines as they can.

	Active     bool
	Expiration oidc.Time // exp, in seconds; 0 if absent
	NotBefore  oidc.Time // nbf
	audience   []string  // aud; never modified once decoded
	Subject    string    // sub
	ClientID   string    // client_id
	Username   string    // username
	// OrgID is the urn:zitadel:iam:user:resourceowner:id claim.
	OrgID string
	scope []string // scope, split on spaces; never modified once decoded
	// projectRoles holds the urn:zitadel:iam:org:project:{projectID}:roles
	// claims.
	projectRoles []projectRoles
	// roles is the urn:zitadel:iam:org:project:roles claim: the roles in
	// the project the token was requested for.
	roles Roles

	TokenType string    // token_type
	IssuedAt  oidc.Time // iat
	Issuer    string    // iss
	JWTID     string    // jti

	raw   []byte // the response body, for Claims and MarshalJSON; never modified
	size  int64  // bytes the decoded Response holds, for the cache's byte bound
	local bool   // a local decision of WithLocalJWT; see Local
}

// Audience returns the aud claim in a new slice that the caller may modify.
func (r *Response) Audience() []string { return slices.Clone(r.audience) }

// HasAudience reports whether aud is one of the token's audiences.
func (r *Response) HasAudience(aud string) bool { return slices.Contains(r.audience, aud) }

// Scopes returns the scope claim, split on spaces, in a new slice that the
// caller may modify.
func (r *Response) Scopes() []string { return slices.Clone(r.scope) }

// HasScope reports whether scope was granted.
func (r *Response) HasScope(scope string) bool { return slices.Contains(r.scope, scope) }

// Roles returns the urn:zitadel:iam:org:project:roles claim: the roles in
// the project the token was requested for. See also [Response.RolesFor].
func (r *Response) Roles() Roles { return r.roles }

// RolesFor returns the roles granted in the project projectID: its
// project-specific claim. The generic urn:zitadel:iam:org:project:roles
// claim stands in only when the response has no project-specific claim at
// all (a server that sends the generic claim alone): ZITADEL puts in it the
// roles of the project the token was requested for, which for a token of
// several projects need not be projectID, and it sends a project-specific
// claim for every project whose roles it includes. An empty projectID reads
// the generic claim of an introspection answer, and no roles of a local
// decision ([WithLocalJWT]).
func (r *Response) RolesFor(projectID string) Roles {
	if projectID == "" {
		if r.local {
			// A JWT's generic claim holds the roles of the project it was
			// requested for, maybe not this API's: none here, so that a
			// role requirement asks the server, which answers for the
			// introspecting API's project.
			return Roles{}
		}
		return r.roles // no project named: the generic claim
	}
	for _, p := range r.projectRoles {
		if p.projectID == projectID {
			return p.roles
		}
	}
	if len(r.projectRoles) > 0 {
		return Roles{} // the project-specific claims name other projects only
	}
	return r.roles
}

// ProjectRoles yields the project ID and roles of each
// urn:zitadel:iam:org:project:{projectID}:roles claim.
func (r *Response) ProjectRoles() iter.Seq2[string, Roles] {
	return func(yield func(string, Roles) bool) {
		for _, p := range r.projectRoles {
			if !yield(p.projectID, p.roles) {
				return
			}
		}
	}
}

// Clone returns a copy of r whose exported fields the caller may change
// without affecting r. The lists are shared: they cannot be changed.
func (r *Response) Clone() *Response {
	c := *r
	return &c
}

// Claims decodes and returns every claim of the response, registered and
// private, as the server sent them. It decodes on each call: handlers that
// need a claim often should keep the result.
func (r *Response) Claims() map[string]any {
	m := map[string]any{}
	if len(r.raw) > 0 {
		_ = json.Unmarshal(r.raw, &m) // raw was valid JSON when decoded
	}
	return m
}

// footprint is what r holds in memory: the struct, its body, and every
// string and slice it decoded, counted as if none were shared (interned
// strings are, so this is an upper bound). A hostile server's answer of
// many short roles or scopes decodes to several times its body's size;
// the cache's byte bound counts that, not the body.
func (r *Response) footprint() int64 {
	const strHdr, grantSize = 16, int64(unsafe.Sizeof(RoleGrant{}))
	n := int64(unsafe.Sizeof(*r)) + int64(cap(r.raw))
	for _, s := range []string{r.Subject, r.ClientID, r.Username, r.OrgID, r.TokenType, r.Issuer, r.JWTID} {
		n += int64(len(s))
	}
	for _, list := range [][]string{r.scope, r.audience} {
		n += int64(cap(list)) * strHdr
		for _, s := range list {
			n += int64(len(s))
		}
	}
	grants := func(rs Roles) int64 {
		m := int64(cap(rs.grants)) * grantSize
		for _, g := range rs.grants {
			m += int64(len(g.Role) + len(g.OrgID) + len(g.Domain))
		}
		return m
	}
	n += grants(r.roles)
	n += int64(cap(r.projectRoles)) * int64(unsafe.Sizeof(projectRoles{}))
	for _, p := range r.projectRoles {
		n += int64(len(p.projectID))
		if len(p.roles.grants) == 0 || len(r.roles.grants) == 0 || &p.roles.grants[0] != &r.roles.grants[0] {
			n += grants(p.roles)
		}
	}
	return n
}

// intern returns the process-wide copy of s (package unique). Audiences,
// organization and project IDs and role grants repeat across tokens: cached
// results share one copy of each, and a guard that interns its own audience
// and project ID compares them by pointer, without reading the bytes.
func intern(s string) string { return unique.Make(s).Value() }

// MarshalJSON returns the response as the server sent it, in a new slice
// that the caller may modify.
func (r *Response) MarshalJSON() ([]byte, error) {
	if len(r.raw) == 0 {
		return []byte(`{"active":false}`), nil
	}
	return bytes.Clone(r.raw), nil
}

func sortedRoles(roles []RoleGrant) Roles {
	if len(roles) == 0 {
		return Roles{}
	}
	slices.SortFunc(roles, compareGrants)
	return Roles{grants: slices.Clip(roles)}
}

package introspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unique"

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
// ({"role": {"orgID": "domain"}}), one entry per role and organization. A nil
// Roles has no role. It is a slice rather than a map because a token carries
// a handful of roles and every cached result holds one.
type Roles []RoleGrant

// Has reports whether role was granted by any organization.
func (r Roles) Has(role string) bool {
	return slices.ContainsFunc(r, func(g RoleGrant) bool { return g.Role == role })
}

// HasInOrg reports whether role was granted by the organization orgID.
func (r Roles) HasInOrg(role, orgID string) bool {
	return slices.ContainsFunc(r, func(g RoleGrant) bool { return g.Role == role && g.OrgID == orgID })
}

// Names returns the granted roles, sorted, each once.
func (r Roles) Names() []string {
	names := make([]string, 0, len(r))
	for _, g := range r {
		names = append(names, g.Role)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ProjectRoles are the roles of one project, from a
// urn:zitadel:iam:org:project:{projectID}:roles claim.
type ProjectRoles struct {
	ProjectID string
	Roles     Roles
}

// Response is an introspection response (RFC 7662 §2.2), decoded once into
// compact typed fields. Every claim stays available through
// [Response.Claims]. aud may arrive as a string or an array, times as
// integers, floats or RFC 3339 strings; active must be the JSON boolean true.
//
// A Response returned by [Client.Introspect] may be shared by many requests
// through the cache: callers MUST NOT modify it.
type Response struct {
	// The fields a guard reads on every request come first, so that they
	// share as few cache lines as they can.

	Active     bool
	Expiration oidc.Time // exp, in seconds; 0 if absent
	NotBefore  oidc.Time // nbf
	Audience   []string  // aud
	Subject    string    // sub
	ClientID   string    // client_id
	Username   string    // username
	// OrgID is the urn:zitadel:iam:user:resourceowner:id claim.
	OrgID string
	Scope []string // scope, split on spaces
	// ProjectRoles holds the urn:zitadel:iam:org:project:{projectID}:roles
	// claims.
	ProjectRoles []ProjectRoles
	// Roles is the urn:zitadel:iam:org:project:roles claim: the roles in
	// the project the token was requested for.
	Roles Roles

	TokenType string    // token_type
	IssuedAt  oidc.Time // iat
	Issuer    string    // iss
	JWTID     string    // jti

	raw []byte // the response body, for Claims and MarshalJSON
}

// RolesFor returns the roles granted in the project projectID: from the
// project-specific claim when the response has one, else the generic
// urn:zitadel:iam:org:project:roles claim.
func (r *Response) RolesFor(projectID string) Roles {
	for _, p := range r.ProjectRoles {
		if p.ProjectID == projectID {
			return p.Roles
		}
	}
	return r.Roles
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

// wire is the registered part of the response, decoded with oidc's lenient
// types.
type wire struct {
	Active     bool
	Scope      oidc.SpaceDelimitedArray
	ClientID   string
	Username   string
	TokenType  string
	Expiration oidc.Time
	IssuedAt   oidc.Time
	NotBefore  oidc.Time
	Subject    string
	Audience   oidc.Audience
	Issuer     string
	JWTID      string
	OrgID      json.RawMessage
}

// UnmarshalJSON decodes an introspection response. Claims are matched by
// their exact names: encoding/json would also take "Active" or "SUB" for
// active and sub, letting a claim of another name stand in for them.
// Registered claims of the wrong JSON type are an error; ZITADEL claims of an
// unexpected shape grant nothing and are left to Claims.
func (r *Response) UnmarshalJSON(data []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	var w wire
	for name, dst := range map[string]any{
		"active": &w.Active, "scope": &w.Scope, "client_id": &w.ClientID, "username": &w.Username,
		"token_type": &w.TokenType, "exp": &w.Expiration, "iat": &w.IssuedAt, "nbf": &w.NotBefore,
		"sub": &w.Subject, "aud": &w.Audience, "iss": &w.Issuer, "jti": &w.JWTID, ClaimOrgID: &w.OrgID,
	} {
		if v, ok := members[name]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return fmt.Errorf("claim %q: %w", name, err)
			}
		}
	}
	*r = Response{
		Active: w.Active, ClientID: w.ClientID, Username: w.Username, TokenType: w.TokenType,
		Expiration: w.Expiration, IssuedAt: w.IssuedAt, NotBefore: w.NotBefore,
		Subject: w.Subject, Issuer: w.Issuer, JWTID: w.JWTID,
		raw: bytes.Clone(data),
	}
	if s := slices.DeleteFunc(w.Scope, func(s string) bool { return s == "" }); len(s) > 0 {
		r.Scope = slices.Clip(s)
	}
	if len(w.Audience) > 0 {
		for i, a := range w.Audience {
			w.Audience[i] = intern(a)
		}
		r.Audience = slices.Clip(w.Audience)
	}
	_ = json.Unmarshal(w.OrgID, &r.OrgID) // a non-string org ID is left out
	r.OrgID = intern(r.OrgID)
	if r.ClientID == r.Subject {
		r.ClientID = r.Subject // service users: one string, not two
	}
	for name, v := range members {
		if !strings.HasPrefix(name, projectRolesPrefix) || !strings.HasSuffix(name, projectRolesSuffix) {
			continue
		}
		roles := decodeRoles(v)
		if name == ClaimRoles {
			r.Roles = roles
			continue
		}
		project := name[len(projectRolesPrefix) : len(name)-len(projectRolesSuffix)]
		if project == "" || strings.Contains(project, ":") {
			continue
		}
		r.ProjectRoles = append(r.ProjectRoles, ProjectRoles{ProjectID: intern(project), Roles: roles})
	}
	// ZITADEL sends the same grants in the generic and the project claim:
	// keep one copy, as cached results are many.
	for i, p := range r.ProjectRoles {
		if slices.Equal(p.Roles, r.Roles) {
			r.ProjectRoles[i].Roles = r.Roles
		}
	}
	r.ProjectRoles = slices.Clip(r.ProjectRoles)
	return nil
}

// intern returns the process-wide copy of s (package unique). Audiences,
// organization and project IDs and role grants repeat across tokens: cached
// results share one copy of each, and a guard that interns its own audience
// and project ID compares them by pointer, without reading the bytes.
func intern(s string) string { return unique.Make(s).Value() }

// MarshalJSON returns the response as the server sent it.
func (r *Response) MarshalJSON() ([]byte, error) {
	if len(r.raw) == 0 {
		return []byte(`{"active":false}`), nil
	}
	return r.raw, nil
}

// Decode parses an introspection response body.
func Decode(data []byte) (*Response, error) {
	r := new(Response)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("introspect: decoding response: %w", err)
	}
	return r, nil
}

// decodeRoles reads {"role": {"orgID": "domain"}}, skipping entries of other
// shapes rather than failing: an odd claim grants nothing.
func decodeRoles(v json.RawMessage) Roles {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	var roles Roles
	for role, orgs := range m {
		var om map[string]any
		if json.Unmarshal(orgs, &om) != nil {
			continue
		}
		for org, domain := range om {
			d, _ := domain.(string)
			roles = append(roles, RoleGrant{Role: intern(role), OrgID: intern(org), Domain: intern(d)})
		}
	}
	slices.SortFunc(roles, func(a, b RoleGrant) int {
		return strings.Compare(a.Role+"\x00"+a.OrgID, b.Role+"\x00"+b.OrgID)
	})
	return slices.Clip(roles)
}

package introspect

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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

// Roles maps a project role to the organizations that granted it: role ->
// organization ID -> organization primary domain. A nil Roles has no role.
type Roles map[string]map[string]string

// Has reports whether role was granted in any organization.
func (r Roles) Has(role string) bool {
	_, ok := r[role]
	return ok
}

// HasInOrg reports whether role was granted by the organization orgID.
func (r Roles) HasInOrg(role, orgID string) bool {
	_, ok := r[role][orgID]
	return ok
}

// Names returns the granted roles, sorted.
func (r Roles) Names() []string {
	names := make([]string, 0, len(r))
	for k := range r {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Response is an introspection response (RFC 7662 §2.2). It keeps every claim:
// the registered ones in the embedded [oidc.IntrospectionResponse] (aud may
// arrive as a string or an array, times as integers or floats) and all others
// in its Claims map. ZITADEL's organization and role claims are also decoded
// into OrgID, Roles and ProjectRoles.
//
// A Response returned by [Client.Introspect] may be shared by many requests
// through the cache: callers MUST NOT modify it.
type Response struct {
	oidc.IntrospectionResponse

	// OrgID is the urn:zitadel:iam:user:resourceowner:id claim.
	OrgID string `json:"-"`
	// Roles is the urn:zitadel:iam:org:project:roles claim: the roles in
	// the project the token was requested for.
	Roles Roles `json:"-"`
	// ProjectRoles holds the urn:zitadel:iam:org:project:{projectID}:roles
	// claims, keyed by project ID.
	ProjectRoles map[string]Roles `json:"-"`
}

// RolesFor returns the roles granted in the project projectID: the
// project-specific claim when the response has one, else the generic
// urn:zitadel:iam:org:project:roles claim.
func (r *Response) RolesFor(projectID string) Roles {
	if roles, ok := r.ProjectRoles[projectID]; ok {
		return roles
	}
	return r.Roles
}

// UnmarshalJSON decodes an introspection response. active must be a JSON
// boolean; claims of unexpected types are left out of the typed fields but
// kept in Claims.
func (r *Response) UnmarshalJSON(data []byte) error {
	var base oidc.IntrospectionResponse
	if err := json.Unmarshal(data, &base); err != nil {
		return err
	}
	*r = Response{IntrospectionResponse: base}
	r.decodeZITADEL()
	return nil
}

// MarshalJSON encodes the response with every claim it was decoded from.
func (r *Response) MarshalJSON() ([]byte, error) {
	return r.IntrospectionResponse.MarshalJSON()
}

// Decode parses an introspection response body.
func Decode(data []byte) (*Response, error) {
	r := new(Response)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("introspect: decoding response: %w", err)
	}
	return r, nil
}

func (r *Response) decodeZITADEL() {
	if org, ok := r.Claims[ClaimOrgID].(string); ok {
		r.OrgID = org
	}
	for name, v := range r.Claims {
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
		if r.ProjectRoles == nil {
			r.ProjectRoles = make(map[string]Roles)
		}
		r.ProjectRoles[project] = roles
	}
}

// decodeRoles reads {"role": {"orgID": "domain"}}, skipping entries of other
// shapes rather than failing: an odd claim grants nothing.
func decodeRoles(v any) Roles {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	roles := make(Roles, len(m))
	for role, orgs := range m {
		om, ok := orgs.(map[string]any)
		if !ok {
			continue
		}
		grants := make(map[string]string, len(om))
		for org, domain := range om {
			d, _ := domain.(string)
			grants[org] = d
		}
		roles[role] = grants
	}
	return roles
}

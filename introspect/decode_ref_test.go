package introspect

// The decoder this package used before decode.go: encoding/json and oidc's
// lenient types. It stays here as the reference that FuzzDecodeMatchesReference
// holds the hand-written decoder to.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// refWire is the registered part of the response, decoded with oidc's lenient
// types.
type refWire struct {
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

// referenceUnmarshal is the former UnmarshalJSON. Claims are matched by
// their exact names: encoding/json would also take "Active" or "SUB" for
// active and sub, letting a claim of another name stand in for them.
// Registered claims of the wrong JSON type are an error; ZITADEL claims of an
// unexpected shape grant nothing and are left to Claims.
func (r *Response) referenceUnmarshal(data []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	var w refWire
	for name, v := range members {
		var dst any
		switch name {
		case "active":
			dst = &w.Active
		case "scope":
			dst = &w.Scope
		case "client_id":
			dst = &w.ClientID
		case "username":
			dst = &w.Username
		case "token_type":
			dst = &w.TokenType
		case "exp":
			dst = &w.Expiration
		case "iat":
			dst = &w.IssuedAt
		case "nbf":
			dst = &w.NotBefore
		case "sub":
			dst = &w.Subject
		case "aud":
			dst = &w.Audience
		case "iss":
			dst = &w.Issuer
		case "jti":
			dst = &w.JWTID
		case ClaimOrgID:
			w.OrgID = v
			continue
		default:
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("claim %q: %w", name, err)
		}
	}
	*r = Response{
		Active: w.Active, ClientID: w.ClientID, Username: w.Username, TokenType: w.TokenType,
		Expiration: w.Expiration, IssuedAt: w.IssuedAt, NotBefore: w.NotBefore,
		Subject: w.Subject, Issuer: w.Issuer, JWTID: w.JWTID,
		raw: bytes.Clone(data),
	}
	if s := slices.DeleteFunc(w.Scope, func(s string) bool { return s == "" }); len(s) > 0 {
		r.scope = slices.Clip(s)
	}
	if len(w.Audience) > 0 {
		for i, a := range w.Audience {
			w.Audience[i] = intern(a)
		}
		r.audience = slices.Clip(w.Audience)
	}
	_ = json.Unmarshal(w.OrgID, &r.OrgID) // a non-string org ID is left out
	r.OrgID = intern(r.OrgID)
	if r.ClientID == r.Subject {
		r.ClientID = r.Subject // service users: one string, not two
	}
	var lastRaw json.RawMessage // ZITADEL sends the same grants twice: decode them once
	var last Roles
	for name, v := range members {
		if !strings.HasPrefix(name, projectRolesPrefix) || !strings.HasSuffix(name, projectRolesSuffix) {
			continue
		}
		roles := last
		if lastRaw == nil || !bytes.Equal(v, lastRaw) {
			roles = referenceRoles(v)
			lastRaw, last = v, roles
		}
		if name == ClaimRoles {
			r.roles = roles
			continue
		}
		project := name[len(projectRolesPrefix) : len(name)-len(projectRolesSuffix)]
		if project == "" || strings.Contains(project, ":") {
			continue
		}
		r.projectRoles = append(r.projectRoles, projectRoles{projectID: intern(project), roles: roles})
	}
	// ZITADEL sends the same grants in the generic and the project claim:
	// keep one copy, as cached results are many.
	for i, p := range r.projectRoles {
		if slices.Equal(p.roles.grants, r.roles.grants) {
			r.projectRoles[i].roles = r.roles
		}
	}
	r.projectRoles = slices.Clip(r.projectRoles)
	r.size = r.footprint()
	return nil
}

// referenceRoles reads {"role": {"orgID": "domain"}}, skipping entries of other
// shapes rather than failing: an odd claim grants nothing.
func referenceRoles(v json.RawMessage) Roles {
	var roles []RoleGrant
	var exact map[string]map[string]string // the shape ZITADEL sends: one pass
	if json.Unmarshal(v, &exact) == nil {
		for role, orgs := range exact {
			for org, domain := range orgs {
				roles = append(roles, RoleGrant{Role: intern(role), OrgID: intern(org), Domain: intern(domain)})
			}
		}
		return sortedRoles(roles)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return Roles{}
	}
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
	return sortedRoles(roles)
}

// referenceDecode is the former Decode: encoding/json validated the body and
// handed UnmarshalJSON the value without the whitespace around it.
func referenceDecode(data []byte) (*Response, error) {
	if !json.Valid(data) {
		return nil, errors.New("invalid JSON")
	}
	r := new(Response)
	if err := r.referenceUnmarshal(bytes.TrimSpace(data)); err != nil {
		return nil, err
	}
	return r, nil
}

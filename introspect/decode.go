package introspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The decoder of introspection responses. It reads the body once, in place,
// and decodes only the claims a Response holds; every other claim is only
// validated. It decodes exactly as encoding/json with oidc's lenient types
// would (FuzzDecodeMatchesReference holds it to that): a member that
// appears twice counts once, as its last occurrence; strings with escapes or
// non-ASCII bytes, and numbers other than small integers, are handed to
// encoding/json and oidc, so that their decoding is theirs. What it saves
// is encoding/json's reflection, its maps of raw members, and the deep call
// stacks that made the goroutine of every introspection grow its stack
// several times.

// The registered claims a Response decodes, as bits of a set.
const (
	claimActive = 1 << iota
	claimScope
	claimClientID
	claimUsername
	claimTokenType
	claimExp
	claimIat
	claimNbf
	claimSub
	claimAud
	claimIss
	claimJti
	claimOrgID
)

// member is one member of the response's object.
type member struct {
	name  string // set only for role claims
	claim int    // one of the claim bits, 0 for a role claim
	value span
}

// UnmarshalJSON decodes an introspection response. Claims are matched by
// their exact names: encoding/json would also take "Active" or "SUB" for
// active and sub, letting a claim of another name stand in for them. A
// claim that appears twice counts as its last occurrence, as in
// encoding/json. Registered claims of the wrong JSON type are an error;
// ZITADEL claims of an unexpected shape grant nothing and are left to
// Claims.
func (r *Response) UnmarshalJSON(data []byte) error { return r.decode(data, true) }

// decode is UnmarshalJSON. The Response keeps the bytes of the value for
// Claims and MarshalJSON: a copy if clone, else data itself, which the
// caller must then never modify.
func (r *Response) decode(data []byte, clone bool) error {
	keep := func(b []byte) []byte {
		if clone {
			return bytes.Clone(b)
		}
		return slices.Clip(b)
	}
	s := scanner{data: data}
	start := 0
	switch s.peek() {
	case '{':
		start = s.pos
	case 'n':
		v, err := s.literal("null")
		if err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		*r = Response{raw: keep(data[v.start:v.end])} // null decodes as an empty object would
		r.size = r.footprint()
		return nil
	default:
		v, err := s.value()
		if err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		return fmt.Errorf("json: cannot unmarshal %s into an introspection response: want an object", kind(data[v.start]))
	}
	var buf [24]member
	members := buf[:0]
	err := s.object(func(name, value span) error {
		n := data[name.start+1 : name.end-1]
		if !name.plain {
			n = []byte(unquote(data, name))
		}
		if c := claimBit(n); c != 0 {
			members = append(members, member{claim: c, value: value})
		} else if isRoleClaim(n) {
			members = append(members, member{name: string(n), value: value})
		}
		return nil
	})
	if err != nil {
		return err
	}
	end := s.pos
	if err := s.end(); err != nil {
		return err
	}

	*r = Response{raw: keep(data[start:end])}
	var seen int            // registered claims already decoded, from the last member backwards
	var roleClaims []member // role claims, last occurrence of each
	for i := len(members) - 1; i >= 0; i-- {
		m := members[i]
		if m.claim == 0 {
			if !slices.ContainsFunc(roleClaims, func(o member) bool { return o.name == m.name }) {
				roleClaims = append(roleClaims, m)
			}
			continue
		}
		if seen&m.claim != 0 {
			continue
		}
		seen |= m.claim
		if err := r.decodeClaim(data, m); err != nil {
			return err
		}
	}
	r.OrgID = intern(r.OrgID)
	if r.ClientID == r.Subject {
		r.ClientID = r.Subject // service users: one string, not two
	}
	r.decodeRoleClaims(data, roleClaims)
	r.size = r.footprint()
	return nil
}

// isRoleClaim reports whether name is urn:zitadel:iam:org:project:...:roles.
func isRoleClaim(name []byte) bool {
	p, x := projectRolesPrefix, projectRolesSuffix
	return len(name) >= len(p) && string(name[:len(p)]) == p && len(name) >= len(x) && string(name[len(name)-len(x):]) == x
}

// claimBit returns the bit of a registered claim's name, 0 for other names.
func claimBit(name []byte) int {
	switch string(name) {
	case "active":
		return claimActive
	case "scope":
		return claimScope
	case "client_id":
		return claimClientID
	case "username":
		return claimUsername
	case "token_type":
		return claimTokenType
	case "exp":
		return claimExp
	case "iat":
		return claimIat
	case "nbf":
		return claimNbf
	case "sub":
		return claimSub
	case "aud":
		return claimAud
	case "iss":
		return claimIss
	case "jti":
		return claimJti
	case ClaimOrgID:
		return claimOrgID
	}
	return 0
}

func claimName(c int) string {
	for _, n := range []string{"active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf", "sub", "aud", "iss", "jti", ClaimOrgID} {
		if claimBit([]byte(n)) == c {
			return n
		}
	}
	return "?"
}

// decodeClaim decodes one registered claim into r.
func (r *Response) decodeClaim(data []byte, m member) error {
	v := data[m.value.start:m.value.end]
	var err error
	switch m.claim {
	case claimActive:
		switch string(v) {
		case "true":
			r.Active = true
		case "false", "null":
		default:
			err = json.Unmarshal(v, &r.Active)
		}
	case claimScope:
		var scope []string
		if m.value.plain && v[0] == '"' {
			scope = strings.Split(string(v[1:len(v)-1]), " ")
		} else {
			var sda oidc.SpaceDelimitedArray
			err = sda.UnmarshalJSON(v)
			scope = sda
		}
		if s := slices.DeleteFunc(scope, func(s string) bool { return s == "" }); len(s) > 0 {
			r.scope = slices.Clip(s)
		}
	case claimExp:
		r.Expiration, err = decodeTime(v, m.value.plain)
	case claimIat:
		r.IssuedAt, err = decodeTime(v, m.value.plain)
	case claimNbf:
		r.NotBefore, err = decodeTime(v, m.value.plain)
	case claimAud:
		err = r.decodeAudience(v, m.value.plain)
	case claimOrgID:
		r.OrgID, _ = decodeString(v, m.value.plain) // a non-string org ID is left out
	case claimClientID:
		r.ClientID, err = decodeString(v, m.value.plain)
	case claimUsername:
		r.Username, err = decodeString(v, m.value.plain)
	case claimTokenType:
		r.TokenType, err = decodeString(v, m.value.plain)
	case claimSub:
		r.Subject, err = decodeString(v, m.value.plain)
	case claimIss:
		r.Issuer, err = decodeString(v, m.value.plain)
	case claimJti:
		r.JWTID, err = decodeString(v, m.value.plain)
	}
	if err != nil {
		return fmt.Errorf("claim %q: %w", claimName(m.claim), err)
	}
	return nil
}

// decodeString decodes a string claim; null is "". Other types are an
// error, encoding/json's.
func decodeString(v []byte, plain bool) (string, error) {
	switch {
	case plain && v[0] == '"':
		return string(v[1 : len(v)-1]), nil
	case string(v) == "null":
		return "", nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// decodeTime decodes a time claim: what oidc.Time accepts (a number of
// seconds, an RFC 3339 string or null), with small integers read here.
func decodeTime(v []byte, plain bool) (oidc.Time, error) {
	if plain && v[0] >= '0' && v[0] <= '9' {
		var n int64
		for _, c := range v {
			n = n*10 + int64(c-'0')
		}
		return oidc.Time(n), nil
	}
	var t oidc.Time
	err := t.UnmarshalJSON(v)
	return t, err
}

// decodeAudience decodes aud: a string or an array of strings, as
// oidc.Audience does.
func (r *Response) decodeAudience(v []byte, plain bool) error {
	var aud []string
	switch {
	case plain && v[0] == '"':
		aud = []string{string(v[1 : len(v)-1])}
	case v[0] == '[':
		s := scanner{data: v}
		simple := true
		_ = s.array(func(e span) error { // v is valid: only the shape matters here
			if !e.plain || v[e.start] != '"' {
				simple = false
			} else if simple {
				aud = append(aud, string(v[e.start+1:e.end-1]))
			}
			return nil
		})
		if !simple {
			aud = nil
			var a oidc.Audience
			if err := a.UnmarshalJSON(v); err != nil {
				return err
			}
			aud = a
		}
	default:
		var a oidc.Audience
		if err := a.UnmarshalJSON(v); err != nil {
			return err
		}
		aud = a
	}
	if len(aud) > 0 {
		for i, a := range aud {
			aud[i] = intern(a)
		}
		r.audience = slices.Clip(aud)
	}
	return nil
}

// decodeRoleClaims decodes the role claims (the last occurrence of each
// name, in any order) into r.roles and r.projectRoles.
func (r *Response) decodeRoleClaims(data []byte, claims []member) {
	var lastRaw []byte // ZITADEL sends the same grants twice: decode them once
	var last Roles
	for i := len(claims) - 1; i >= 0; i-- { // in document order
		c := claims[i]
		v := data[c.value.start:c.value.end]
		roles := last
		if lastRaw == nil || !bytes.Equal(v, lastRaw) {
			roles = decodeRoles(v)
			lastRaw, last = v, roles
		}
		if c.name == ClaimRoles {
			r.roles = roles
			continue
		}
		project := c.name[len(projectRolesPrefix) : len(c.name)-len(projectRolesSuffix)]
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
}

// decodeRoles reads {"role": {"orgID": "domain"}}, skipping entries of other
// shapes rather than failing: an odd claim grants nothing. A role or an
// organization named twice counts as its last occurrence. v is valid JSON.
func decodeRoles(v []byte) Roles {
	if v[0] != '{' {
		return Roles{}
	}
	type grant struct {
		RoleGrant
		occurrence int // which member of the claim named the role
	}
	var grants []grant
	occurrence := 0
	s := scanner{data: v}
	_ = s.object(func(name, value span) error {
		occurrence++
		role := intern(unquote(v, name))
		// A marker that grants nothing: whatever this member holds, earlier
		// members of the same role no longer count.
		grants = append(grants, grant{RoleGrant: RoleGrant{Role: role}, occurrence: -occurrence})
		if v[value.start] != '{' {
			return nil // not an object: no grant
		}
		inner := scanner{data: v[:value.end], pos: value.start}
		return inner.object(func(org, domain span) error {
			d := ""
			if v[domain.start] == '"' {
				d = unquote(v, domain)
			}
			grants = append(grants, grant{RoleGrant: RoleGrant{Role: role, OrgID: intern(unquote(v, org)), Domain: intern(d)}, occurrence: occurrence})
			return nil
		})
	})
	// Keep, for each role, only the grants of its last member, and of those
	// only the last of each organization.
	slices.SortStableFunc(grants, func(a, b grant) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		return strings.Compare(a.OrgID, b.OrgID)
	})
	kept := grants[:0] // compacted in place
	for i := 0; i < len(grants); {
		j, lastOcc := i, 0
		for ; j < len(grants) && grants[j].Role == grants[i].Role; j++ {
			lastOcc = max(lastOcc, abs(grants[j].occurrence))
		}
		for k := i; k < j; k++ {
			g := grants[k]
			if g.occurrence != lastOcc {
				continue
			}
			if n := len(kept); n > 0 && kept[n-1].Role == g.Role && kept[n-1].OrgID == g.OrgID {
				kept[n-1] = g // a later occurrence of the organization
				continue
			}
			kept = append(kept, g)
		}
		i = j
	}
	if len(kept) == 0 {
		return Roles{}
	}
	roles := make([]RoleGrant, len(kept)) // exactly: the cache counts what a Response holds
	for i, g := range kept {
		roles[i] = g.RoleGrant
	}
	return sortedRoles(roles)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// unquote returns the value of the string at sp in v, which is valid JSON.
func unquote(v []byte, sp span) string {
	if sp.plain {
		return string(v[sp.start+1 : sp.end-1])
	}
	var s string
	_ = json.Unmarshal(v[sp.start:sp.end], &s)
	return s
}

// kind names the JSON type of a value from its first byte.
func kind(first byte) string {
	switch first {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// Decode parses an introspection response body.
func Decode(data []byte) (*Response, error) {
	r := new(Response)
	if err := r.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("introspect: decoding response: %w", err)
	}
	return r, nil
}

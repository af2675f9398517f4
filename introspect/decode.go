package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The decoder of introspection responses. It reads the body once, in place,
// and decodes only the claims a Response holds; every other claim is only
// validated. It decodes exactly as encoding/json with oidc's lenient types
// would (FuzzDecodeMatchesReference holds it to that), but for times
// outside the years 1 to 9999, which it refuses (see decodeTime): a member that
// appears twice counts once, as its last occurrence; strings with escapes or
// non-ASCII bytes, and numbers other than small integers, are handed to
// encoding/json and oidc, so that their decoding is theirs. What it saves
// is encoding/json's reflection, its maps of raw members, and the deep call
// stacks that made the goroutine of every introspection grow its stack
// several times.
//
// Why not a faster JSON library: it would add a dependency to the
// library's own go.mod for one type, and decode escapes, invalid UTF-8,
// numbers and duplicate names by its own rules; every difference from
// encoding/json is a way for two readers of one answer to disagree. The
// scanner here is small, and the differential fuzz test holds the whole
// decoder to encoding/json's results.

// claim is a registered claim that a Response decodes, as a bit of a set.
type claim uint16

const (
	claimActive claim = 1 << iota
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

// claimNames are the claims' names, in the order of their bits.
var claimNames = [...]string{"active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf", "sub", "aud", "iss", "jti", ClaimOrgID}

func (c claim) String() string { return claimNames[bits.TrailingZeros16(uint16(c))] }

// claimOf returns the claim of a member's name, 0 for other names.
func claimOf(name []byte) claim {
	for i, n := range claimNames {
		if string(name) == n {
			return 1 << i
		}
	}
	return 0
}

// isRoleClaim reports whether name is urn:zitadel:iam:org:project:...:roles.
func isRoleClaim(name []byte) bool {
	p, x := projectRolesPrefix, projectRolesSuffix
	return len(name) >= len(p) && string(name[:len(p)]) == p && len(name) >= len(x) && string(name[len(name)-len(x):]) == x
}

// member is a member of the response's object that the decoder keeps.
type member struct {
	name  string // a role claim's name; "" for a registered claim
	claim claim
	value span
}

// UnmarshalJSON decodes an introspection response. Claims are matched by
// their exact names: encoding/json would also take "Active" or "SUB" for
// active and sub, letting a claim of another name stand in for them. A
// claim that appears twice counts as its last occurrence, as in
// encoding/json. Registered claims of the wrong JSON type are an error, and
// so are times (exp, iat, nbf) outside the years 1 to 9999; ZITADEL claims
// of an unexpected shape grant nothing and are left to Claims. On error, r
// is left as it was.
func (r *Response) UnmarshalJSON(data []byte) error { return r.decode(data, true) }

// decode is UnmarshalJSON. The Response keeps the bytes of the value for
// Claims and MarshalJSON: a copy if clone, else data itself, which the
// caller must then never modify.
func (r *Response) decode(data []byte, clone bool) error {
	keep := func(b []byte) []byte {
		if clone {
			return bytes.Clone(b)
		}
		return b // its capacity counts in footprint: the whole buffer stays
	}
	s := scanner{data: data}
	if c := s.peek(); c != '{' {
		v, err := s.value()
		if err == nil {
			err = s.end()
		}
		switch {
		case err != nil:
			return err
		case v.kind == 'n':
			*r = Response{raw: keep(data[v.start:v.end])} // null decodes as an empty object would
			r.size = r.footprint()
			return nil
		}
		return fmt.Errorf("the response is %s, not a JSON object", kindName(v.kind))
	}
	start := s.pos
	var buf [24]member
	members := buf[:0]
	roleClaims := 0
	err := s.object(func(name, value span) error {
		n := name.bytes(data)
		if c := claimOf(n); c != 0 {
			members = append(members, member{claim: c, value: value})
		} else if isRoleClaim(n) {
			members = append(members, member{name: string(n), value: value})
			roleClaims++
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

	d := Response{raw: keep(data[start:end])}
	var decoded claim // registered claims decoded, from the last member back
	roles := make([]member, 0, roleClaims)
	var seen nameIndex
	for i := len(members) - 1; i >= 0; i-- {
		m := members[i]
		switch {
		case m.claim == 0:
			if _, ok := seen.find([]byte(m.name)); !ok {
				seen.add([]byte(m.name), 0)
				roles = append(roles, m) // the last occurrence of this name
			}
		case decoded&m.claim == 0:
			decoded |= m.claim
			if err := d.decodeClaim(data, m); err != nil {
				return err
			}
		}
	}
	d.OrgID = intern(d.OrgID)
	if d.ClientID == d.Subject {
		d.ClientID = d.Subject // service users: one string, not two
	}
	slices.Reverse(roles) // document order
	d.decodeRoleClaims(data, roles)
	d.size = d.footprint()
	*r = d
	return nil
}

// decodeClaim decodes one registered claim into r.
func (r *Response) decodeClaim(data []byte, m member) error {
	v := data[m.value.start:m.value.end]
	var err error
	switch m.claim {
	case claimActive:
		switch m.value.kind {
		case 't':
			r.Active = true
		case 'f', 'n':
		default:
			err = json.Unmarshal(v, &r.Active) // encoding/json's error
		}
	case claimScope:
		var scope []string
		if m.value.plainString() {
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
		r.Expiration, err = decodeTime(v, m.value)
	case claimIat:
		r.IssuedAt, err = decodeTime(v, m.value)
	case claimNbf:
		r.NotBefore, err = decodeTime(v, m.value)
	case claimAud:
		err = r.decodeAudience(v, m.value)
	case claimOrgID:
		r.OrgID, _ = decodeString(v, m.value) // a non-string org ID is left out
	case claimClientID:
		r.ClientID, err = decodeString(v, m.value)
	case claimUsername:
		r.Username, err = decodeString(v, m.value)
	case claimTokenType:
		r.TokenType, err = decodeString(v, m.value)
	case claimSub:
		r.Subject, err = decodeString(v, m.value)
	case claimIss:
		r.Issuer, err = decodeString(v, m.value)
	case claimJti:
		r.JWTID, err = decodeString(v, m.value)
	}
	if err != nil {
		return fmt.Errorf("claim %q: %w", m.claim, err)
	}
	return nil
}

// decodeString decodes a string claim at sp; null is "". Other types are an
// error, encoding/json's.
func decodeString(v []byte, sp span) (string, error) {
	switch {
	case sp.plainString():
		return string(v[1 : len(v)-1]), nil
	case sp.kind == 'n':
		return "", nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// Times a Response accepts: from the year 1 to the year 9999, the range of
// RFC 3339.
const (
	minTime = -62135596800 // 0001-01-01T00:00:00Z
	maxTime = 253402300799 // 9999-12-31T23:59:59Z
)

// errTimeRange is the cause of a time claim's error when it is out of range.
var errTimeRange = errors.New("out of range: not a time between the years 1 and 9999")

// decodeTime decodes a time claim at sp: what oidc.Time accepts (a number of
// seconds, an RFC 3339 string or null), with small integers read here. A
// time out of range is an error: oidc.Time would convert it from a float
// in a way Go leaves to the machine (on amd64, 1e300 seconds becomes the
// most negative int64, which time.Unix reads as a date past every exp
// check).
func decodeTime(v []byte, sp span) (oidc.Time, error) {
	if sp.plain && sp.kind == '0' {
		var n int64
		for _, c := range v {
			n = n*10 + int64(c-'0')
		}
		if n > maxTime {
			return 0, errTimeRange
		}
		return oidc.Time(n), nil
	}
	if sp.kind == '0' {
		f, err := strconv.ParseFloat(string(v), 64)
		if err == nil && (f < minTime || f > maxTime) {
			return 0, errTimeRange
		}
	}
	var t oidc.Time
	if err := t.UnmarshalJSON(v); err != nil {
		return 0, err
	}
	if t < minTime || t > maxTime { // an RFC 3339 string of the year 0, or past 9999 by its offset
		return 0, errTimeRange
	}
	return t, nil
}

// errNotPlain ends the scan of an aud array that the fast path cannot take.
var errNotPlain = errors.New("not a plain string")

// decodeAudience decodes aud at sp: a string or an array of strings, as
// oidc.Audience does.
func (r *Response) decodeAudience(v []byte, sp span) error {
	var aud []string
	switch {
	case sp.plainString():
		aud = []string{string(v[1 : len(v)-1])}
	case sp.kind == '[':
		s := scanner{data: v}
		err := s.array(func(e span) error {
			if !e.plainString() {
				return errNotPlain
			}
			aud = append(aud, string(v[e.start+1:e.end-1]))
			return nil
		})
		if err == nil {
			break
		}
		fallthrough
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
// name) into r.roles and r.projectRoles.
func (r *Response) decodeRoleClaims(data []byte, claims []member) {
	var lastRaw []byte // ZITADEL sends the same grants twice: decode them once
	var last Roles
	for _, c := range claims {
		v := data[c.value.start:c.value.end]
		roles := last
		if lastRaw == nil || !bytes.Equal(v, lastRaw) {
			sp := c.value
			sp.start, sp.end = 0, len(v) // relative to v
			roles = decodeRoles(v, sp)
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

// decodeRoles reads the roles claim v at sp, {"role": {"orgID": "domain"}},
// skipping entries of other shapes rather than failing: an odd claim grants
// nothing. A role or an organization named twice counts as its last
// occurrence. v is valid JSON. Memory is in proportion to the distinct
// grants, whatever the body repeats.
func decodeRoles(v []byte, sp span) Roles {
	if sp.kind != '{' {
		return Roles{}
	}
	type role struct{ grants []RoleGrant }
	var roles []role
	var byRole nameIndex
	s := scanner{data: v}
	_ = s.object(func(name, value span) error {
		key := name.bytes(v)
		var grants []RoleGrant
		if value.kind == '{' {
			roleName := intern(string(key))
			var byOrg nameIndex
			inner := scanner{data: v[:value.end], pos: value.start}
			_ = inner.object(func(org, domain span) error {
				d := ""
				if domain.kind == '"' {
					d = intern(string(domain.bytes(v)))
				}
				o := org.bytes(v)
				if i, ok := byOrg.find(o); ok {
					grants[i].Domain = d // a later occurrence of the organization
					return nil
				}
				byOrg.add(o, len(grants))
				grants = append(grants, RoleGrant{Role: roleName, OrgID: intern(string(o)), Domain: d})
				return nil
			})
		}
		if i, ok := byRole.find(key); ok {
			roles[i].grants = grants // a later occurrence of the role: it alone counts
			return nil
		}
		byRole.add(key, len(roles))
		roles = append(roles, role{grants: grants})
		return nil
	})
	n := 0
	for _, r := range roles {
		n += len(r.grants)
	}
	if n == 0 {
		return Roles{}
	}
	grants := make([]RoleGrant, 0, n) // exactly: the cache counts what a Response holds
	for _, r := range roles {
		grants = append(grants, r.grants...)
	}
	return sortedRoles(grants)
}

// nameIndex maps names to indexes: an array searched in order while small,
// a map past that, so that a hostile body of many names costs linear time.
// Lookups take the name's bytes and allocate nothing.
type nameIndex struct {
	n     int
	names [8]string
	at    [8]int
	large map[string]int
}

func (x *nameIndex) find(name []byte) (int, bool) {
	if x.large != nil {
		i, ok := x.large[string(name)]
		return i, ok
	}
	for k, n := range x.names[:x.n] {
		if n == string(name) {
			return x.at[k], true
		}
	}
	return 0, false
}

func (x *nameIndex) add(name []byte, i int) {
	if x.large == nil && x.n < len(x.names) {
		x.names[x.n], x.at[x.n] = string(name), i
		x.n++
		return
	}
	if x.large == nil {
		x.large = make(map[string]int, 2*len(x.names))
		for k, n := range x.names[:x.n] {
			x.large[n] = x.at[k]
		}
	}
	x.large[string(name)] = i
}

// kindName names a span's kind.
func kindName(kind byte) string {
	switch kind {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '0':
		return "a number"
	}
	return "null"
}

// Decode parses an introspection response body.
func Decode(data []byte) (*Response, error) {
	r := new(Response)
	if err := r.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("introspect: decoding response: %w", err)
	}
	return r, nil
}

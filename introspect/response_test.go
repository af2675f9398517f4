package introspect_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/tokenguard/tokenguard/introspect"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantErr   bool
		wantAud   []string
		wantExp   int64
		wantRoles []string
	}{
		{"aud string", `{"active":true,"aud":"p1","exp":1700000000}`, false, []string{"p1"}, 1700000000, nil},
		{"aud array", `{"active":true,"aud":["p1","c1"]}`, false, []string{"p1", "c1"}, 0, nil},
		{"exp float", `{"active":true,"exp":1700000000.9}`, false, nil, 1700000000, nil},
		{"active string", `{"active":"true"}`, true, nil, 0, nil},
		{"roles", `{"active":true,"urn:zitadel:iam:org:project:roles":{"b":{"o":"d"},"a":{"o":"d"}}}`, false, nil, 0, []string{"a", "b"}},
		{"roles wrong type", `{"active":true,"urn:zitadel:iam:org:project:roles":["admin"]}`, false, nil, 0, []string{}},
		{"role grants wrong type", `{"active":true,"urn:zitadel:iam:org:project:roles":{"admin":true}}`, false, nil, 0, []string{}},
		{"not an object", `[]`, true, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := introspect.Decode([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decode(%s) err = %v, wantErr %v", tt.body, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if aud := r.Audience(); !slices.Equal(aud, tt.wantAud) {
				t.Errorf("aud = %v, want %v", aud, tt.wantAud)
			}
			if int64(r.Expiration) != tt.wantExp {
				t.Errorf("exp = %d, want %d", r.Expiration, tt.wantExp)
			}
			if tt.wantRoles != nil {
				got := r.RolesFor("any").Names()
				if !slices.Equal(got, tt.wantRoles) {
					t.Errorf("roles = %v, want %v", got, tt.wantRoles)
				}
			}
		})
	}
}

func TestClaimNamesMatchExactly(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"ACTIVE":true}`,
		`{"active":true,"sub":"alice","SUB":"admin","aud":["p"],"Aud":["other"]}`,
	} {
		r, err := introspect.Decode([]byte(body))
		if err != nil {
			t.Fatalf("Decode(%s) err = %v", body, err)
		}
		if body == `{"ACTIVE":true}` && r.Active {
			t.Errorf("Decode(%s) is active: another name stood in for active", body)
		}
		if r.Active && (r.Subject != "alice" || !slices.Equal(r.Audience(), []string{"p"})) {
			t.Errorf("Decode(%s) = sub %q aud %v: another name stood in for sub or aud", body, r.Subject, r.Audience())
		}
	}
}

func TestProjectRolesPreferred(t *testing.T) {
	t.Parallel()
	r, err := introspect.Decode([]byte(`{"active":true,
		"urn:zitadel:iam:org:project:roles":{"reader":{"o":"d"}},
		"urn:zitadel:iam:org:project:42:roles":{"admin":{"o":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !r.RolesFor("42").Has("admin") || r.RolesFor("42").Has("reader") {
		t.Errorf("RolesFor(42) = %v, want the project-specific claim", r.RolesFor("42"))
	}
	if r.RolesFor("7").Len() != 0 {
		t.Errorf("RolesFor(7) = %v, want none: the generic claim does not stand in when project claims are present", r.RolesFor("7"))
	}
	if !r.RolesFor("").Has("reader") {
		t.Errorf("RolesFor(\"\") = %v, want the generic claim", r.RolesFor(""))
	}
}

func TestDecodeSharesDuplicates(t *testing.T) {
	t.Parallel()
	r, err := introspect.Decode([]byte(`{"active":true,"sub":"u1","client_id":"u1",
		"urn:zitadel:iam:user:resourceowner:id":"o1","custom":[1,2],
		"urn:zitadel:iam:org:project:roles":{"b":{"o1":"d"},"a":{"o1":"d"}},
		"urn:zitadel:iam:org:project:42:roles":{"a":{"o1":"d"},"b":{"o1":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	pr := r.RolesFor("42")
	// Roles keeps its grants unexported; reflect reads the slice's address.
	grants := func(r introspect.Roles) uintptr { return reflect.ValueOf(r).Field(0).Pointer() }
	if pr.Len() != 2 || grants(pr) != grants(r.Roles()) {
		t.Errorf("project roles equal to the generic claim are a second copy: %v", pr)
	}
	if got := r.Roles().Names(); strings.Join(got, ",") != "a,b" {
		t.Errorf("Names() = %v, want [a b]", got)
	}
	claims := r.Claims()
	if claims["custom"] == nil || claims["sub"] != "u1" || claims["urn:zitadel:iam:org:project:42:roles"] == nil {
		t.Errorf("Claims() = %v, want every claim", claims)
	}
	if out, _ := json.Marshal(r); !strings.Contains(string(out), `"custom":[1,2]`) {
		t.Errorf("MarshalJSON() = %s, want the response as sent", out)
	}
}

// TestDecodeInterns checks that responses share one copy of the strings that
// repeat across tokens, so that cached results hold them once and guards
// compare them by pointer.
func TestDecodeInterns(t *testing.T) {
	t.Parallel()
	body := func(sub string) []byte {
		return []byte(`{"active":true,"sub":"` + sub + `","aud":["p1","c1"],
			"urn:zitadel:iam:user:resourceowner:id":"o1",
			"urn:zitadel:iam:org:project:42:roles":{"admin":{"o1":"example.com"}}}`)
	}
	a, err := introspect.Decode(body("alice"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := introspect.Decode(body("bob"))
	if err != nil {
		t.Fatal(err)
	}
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are two copies, want one", what, x, y)
		}
	}
	same("aud[0]", a.Audience()[0], b.Audience()[0])
	same("aud[1]", a.Audience()[1], b.Audience()[1])
	same("org ID", a.OrgID, b.OrgID)
	projectID := func(r *introspect.Response) string {
		for id := range r.ProjectRoles() {
			return id
		}
		return ""
	}
	same("project ID", projectID(a), projectID(b))
	first := func(r introspect.Roles) introspect.RoleGrant {
		for g := range r.All() {
			return g
		}
		return introspect.RoleGrant{}
	}
	ra, rb := first(a.RolesFor("42")), first(b.RolesFor("42"))
	same("role", ra.Role, rb.Role)
	same("role org ID", ra.OrgID, rb.OrgID)
	same("role domain", ra.Domain, rb.Domain)
	same("role org ID and org ID", ra.OrgID, a.OrgID)
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"aud":"p","exp":1700000000,"scope":"openid profile"}`,
		`{"active":true,"aud":["p","c"],"exp":1.7e9,"nbf":"2024-01-01T00:00:00Z"}`,
		`{"active":true,"urn:zitadel:iam:org:project:roles":{"admin":{"o":"d"}},"urn:zitadel:iam:org:project:1:roles":{"r":{"o":1}}}`,
		`{"active":false}`, `{"active":"true"}`, `null`, `{"aud":[1,2]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := introspect.Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to read.
		_ = r.RolesFor("1").Names()
		_ = r.Roles().Has("admin")
		_ = r.Audience()
		_ = r.Scopes()
		for range r.ProjectRoles() {
		}
		_ = r.Expiration.AsTime()
		if r.Active && r.Claims()["active"] != true {
			t.Fatalf("Decode(%q) is active, but the body's active is %v", data, r.Claims()["active"])
		}
	})
}

// TestReadersCannotChangeAResponse is the attack on a cached Response: a
// reader that modifies whatever it gets back (slices, maps, clones, the
// JSON) must leave the Response as it was, for the next request.
func TestReadersCannotChangeAResponse(t *testing.T) {
	t.Parallel()
	body := `{"active":true,"sub":"alice","aud":["p1","c1"],"scope":"openid read","custom":{"k":"v"},
		"urn:zitadel:iam:org:project:roles":{"reader":{"o1":"d"}},
		"urn:zitadel:iam:org:project:42:roles":{"reader":{"o1":"d"},"writer":{"o1":"d"}}}`
	r, err := introspect.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var b strings.Builder
		js, _ := r.MarshalJSON()
		b.WriteString(string(js))
		for id, roles := range r.ProjectRoles() {
			b.WriteString(id + roles.String())
		}
		claims, _ := json.Marshal(r.Claims())
		b.Write(claims)
		b.WriteString(strings.Join(r.Audience(), ",") + strings.Join(r.Scopes(), ",") + r.Roles().String() + r.RolesFor("42").String())
		return b.String() + r.Subject
	}
	before := snapshot()

	for _, s := range [][]string{r.Audience(), r.Scopes(), r.Roles().Names(), r.RolesFor("42").Names()} {
		if len(s) > 0 {
			s[0] = "admin"
		}
		slices.Reverse(s)
		_ = append(s[:0], "admin", "admin")
	}
	for g := range r.RolesFor("42").All() {
		g.Role = "admin"
	}
	js, _ := r.MarshalJSON()
	for i := range js {
		js[i] = ' '
	}
	claims := r.Claims()
	claims["sub"] = "root"
	if m, ok := claims["custom"].(map[string]any); ok {
		m["k"] = "pwned"
	}
	c := r.Clone()
	c.Subject, c.Active = "root", false

	if after := snapshot(); after != before {
		t.Errorf("a reader changed the Response:\nbefore %s\nafter  %s", before, after)
	}
	if !r.HasAudience("p1") || r.HasAudience("admin") || !r.HasScope("read") || r.HasScope("admin") || r.RolesFor("42").Has("admin") {
		t.Errorf("a reader changed a decision: aud %v scope %v roles %v", r.Audience(), r.Scopes(), r.RolesFor("42"))
	}
}

func TestNewRoles(t *testing.T) {
	t.Parallel()
	in := []introspect.RoleGrant{{Role: "b", OrgID: "o"}, {Role: "a", OrgID: "o"}, {Role: "b", OrgID: "o"}}
	r := introspect.NewRoles(in...)
	in[0].Role = "admin" // NewRoles copied
	if r.Len() != 2 || r.Has("admin") || !r.HasInOrg("a", "o") || !slices.Equal(r.Names(), []string{"a", "b"}) || r.String() != "[a@o b@o]" {
		t.Errorf("NewRoles() = %v (%d), want [a@o b@o]", r, r.Len())
	}
	var zero introspect.Roles
	if zero.Has("a") || zero.Len() != 0 || len(zero.Names()) != 0 {
		t.Errorf("zero Roles = %v, want no role", zero)
	}
}

// TestRolesOfAnotherProjectNeverStandIn is the attack on RolesFor: a token
// for two projects whose user has roles in project A only. ZITADEL (and the
// development server, in JWT access tokens) puts A's roles in the generic
// claim as well as in A's own; an API of project B must not read them as
// roles in B. The generic claim stands in only for a server that sends no
// project-specific claim at all.
func TestRolesOfAnotherProjectNeverStandIn(t *testing.T) {
	t.Parallel()
	r, err := introspect.Decode([]byte(`{"active":true,"aud":["A","B"],
		"urn:zitadel:iam:org:project:roles":{"admin":{"o":"d"}},
		"urn:zitadel:iam:org:project:A:roles":{"admin":{"o":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.RolesFor("B").Has("admin") {
		t.Errorf("RolesFor(B) = %v: project A's roles granted in project B", r.RolesFor("B"))
	}
	if !r.RolesFor("A").Has("admin") {
		t.Errorf("RolesFor(A) = %v, want admin", r.RolesFor("A"))
	}
	old, err := introspect.Decode([]byte(`{"active":true,"urn:zitadel:iam:org:project:roles":{"admin":{"o":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !old.RolesFor("B").Has("admin") {
		t.Errorf("RolesFor(B) = %v without any project claim, want the generic claim", old.RolesFor("B"))
	}
}

package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// describeClaims is everything a handler can read about its caller, as text.
func describeClaims(c *middleware.Claims) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sub=%s client=%s user=%s org=%s roles=%v exp=%v scopes=%v has(read)=%v has(admin)=%v",
		c.Subject, c.ClientID, c.Username, c.OrgID, c.Roles, c.Expiry.Unix(), c.Scopes(), c.HasScope("read"), c.HasScope("admin"))
	if r := c.Response(); r != nil {
		js, _ := r.MarshalJSON()
		claims, _ := json.Marshal(r.Claims())
		fmt.Fprintf(&b, " active=%v aud=%v exp=%d nbf=%d jti=%s typ=%s generic=%v json=%s claims=%s",
			r.Active, r.Audience(), r.Expiration, r.NotBefore, r.JWTID, r.TokenType, r.Roles(), js, claims)
		for id, roles := range r.ProjectRoles() {
			fmt.Fprintf(&b, " project %s=%v", id, roles)
		}
	}
	return b.String()
}

// vandalize changes whatever v lets it change: through exported fields,
// pointers, interfaces, slices and maps, as reflection allows.
func vandalize(v reflect.Value, seen map[uintptr]bool, depth int) {
	if depth > 8 || !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		vandalize(v.Elem(), seen, depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			vandalize(v.Field(i), seen, depth+1)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			vandalize(v.Index(i), seen, depth+1)
		}
	case reflect.Map:
		if !v.CanInterface() || v.IsNil() {
			return
		}
		for _, k := range v.MapKeys() {
			vandalize(v.MapIndex(k), seen, depth+1)
			v.SetMapIndex(k, reflect.Zero(v.Type().Elem()))
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString("admin")
		}
	case reflect.Bool:
		if v.CanSet() {
			v.SetBool(!v.Bool())
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v.CanSet() {
			v.SetInt(1)
		}
	}
}

// TestHandlersCannotChangeClaims is the attack of a handler on the cache: it
// mutates everything it can reach from its claims (fields, returned slices
// and maps, the Response copy, its JSON, reflection on exported fields, the
// json.Unmarshaler it can type-assert), many times at once; every later
// request with the same token sees the original claims and gets the same
// decisions, and -race sees no write to shared memory.
func TestHandlersCannotChangeClaims(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{Subject: "u-1", OrgID: "o1", Scopes: []string{"write", "read", "openid"},
		Roles: map[string]map[string]string{"reader": {"o1": "d"}, "writer": {"o1": "d"}},
		Extra: map[string]any{"custom": map[string]any{"k": "v"}, "jti": "j-1"}})

	mux := http.NewServeMux()
	var mu sync.Mutex
	var seen []string
	mux.Handle("/read", s.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		mu.Lock()
		seen = append(seen, describeClaims(c))
		mu.Unlock()
	})))
	mux.Handle("/vandal", s.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		scopes := c.Scopes()
		slices.Sort(scopes)
		scopes[0] = "admin"
		_ = append(scopes[:1], "admin", "admin")
		names := c.Roles.Names()
		slices.Reverse(names)
		names[0] = "admin"
		for g := range c.Roles.All() {
			g.Role, g.OrgID = "admin", "o1"
		}
		resp := c.Response()
		for _, s := range [][]string{resp.Audience(), resp.Scopes(), resp.Roles().Names(), resp.RolesFor(project).Names()} {
			if len(s) > 0 {
				s[0] = "admin"
			}
		}
		js, _ := resp.MarshalJSON()
		copy(js, `{"active":false}`)
		claims := resp.Claims()
		if m, ok := claims["custom"].(map[string]any); ok {
			m["k"] = "pwned"
		}
		claims["sub"] = "admin"
		for _, v := range []any{c, resp, c.Roles, r.Context()} {
			vandalize(reflect.ValueOf(v), map[uintptr]bool{}, 0)
		}
		forged := `{"active":true,"sub":"admin","aud":["` + project + `"],"scope":"admin","urn:zitadel:iam:org:project:roles":{"admin":{"o1":"d"}}}`
		if u, ok := any(c.Response()).(json.Unmarshaler); ok {
			_ = u.UnmarshalJSON([]byte(forged))
		}
		c.Roles = introspect.NewRoles(introspect.RoleGrant{Role: "admin", OrgID: "o1"})
		if !c.Roles.Has("admin") || c.Subject != "admin" {
			t.Errorf("the vandal could not change its own request's claims: %s", describeClaims(c))
		}
	})))
	mux.Handle("/admin", s.mw.Require(middleware.Role("admin"))(http.HandlerFunc(whoami)))
	mux.Handle("/scoped", s.mw.Require(middleware.Scope("admin"))(http.HandlerFunc(whoami)))
	mux.Handle("/writer", s.mw.Require(middleware.RoleInOrg("writer", "o1"), middleware.Scope("write"))(http.HandlerFunc(whoami)))
	do := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}

	if rec := do("/read"); rec.Code != 200 {
		t.Fatalf("GET /read = %d %s", rec.Code, rec.Body)
	}
	original := seen[0]
	if !strings.Contains(original, "roles=[reader@o1 writer@o1]") || !strings.Contains(original, `"k":"v"`) {
		t.Fatalf("claims = %s, want the token's", original)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if rec := do("/vandal"); rec.Code != 200 {
					t.Errorf("GET /vandal = %d", rec.Code)
				}
				do("/read")
			}
		})
	}
	wg.Wait()
	for _, path := range []string{"/admin", "/scoped"} {
		if rec := do(path); rec.Code != http.StatusForbidden {
			t.Errorf("after the vandals, GET %s = %d %s, want 403: a handler changed the decision", path, rec.Code, rec.Body)
		}
	}
	if rec := do("/writer"); rec.Code != 200 {
		t.Errorf("after the vandals, GET /writer = %d %s, want 200", rec.Code, rec.Body)
	}
	do("/read")
	for i, got := range seen {
		if got != original {
			t.Fatalf("request %d saw claims changed by a handler:\n got %s\nwant %s", i, got, original)
		}
	}
	if n := s.as.Calls(); n != 1 {
		t.Errorf("introspections = %d, want 1: every request was answered from the cache", n)
	}
}

func TestNewClaims(t *testing.T) {
	t.Parallel()
	r, err := introspect.Decode([]byte(`{"active":true,"sub":"alice","scope":"read write","exp":1700000000,
		"urn:zitadel:iam:org:project:roles":{"reader":{"o":"d"}},"urn:zitadel:iam:org:project:42:roles":{"admin":{"o":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := middleware.NewClaims(r, "42")
	if c.Subject != "alice" || !c.Roles.Has("admin") || c.Roles.Has("reader") || !c.HasScope("write") || c.Expiry.Unix() != 1700000000 {
		t.Errorf("NewClaims() = %s", describeClaims(c))
	}
	if g := middleware.NewClaims(r, ""); !g.Roles.Has("reader") {
		t.Errorf("NewClaims(r, \"\").Roles = %v, want the generic claim", g.Roles)
	}
	ctx := middleware.NewContext(context.Background(), c)
	got, _ := middleware.ClaimsFromContext(ctx)
	if describeClaims(got) != describeClaims(c) {
		t.Errorf("ClaimsFromContext(NewContext(c)) = %s, want %s", describeClaims(got), describeClaims(c))
	}
	var lit middleware.Claims // a literal in a handler test
	if lit.Scopes() != nil || lit.HasScope("read") || lit.Response() != nil || middleware.NewClaims(nil, "").Response() != nil {
		t.Error("claims without a response: want no scopes and a nil Response")
	}
}

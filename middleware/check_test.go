package middleware_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	good := s.mint(fakeas.Token{Subject: "u-1", Roles: map[string]map[string]string{"reader": {"o": "d"}}})
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	for _, tt := range []struct {
		name       string
		token      string
		reqs       []middleware.Requirement
		wantStatus int
		wantErr    error
	}{
		{"accepted", good, nil, 200, nil},
		{"role", good, []middleware.Requirement{middleware.Role("reader")}, 200, nil},
		{"missing role", good, []middleware.Requirement{middleware.Role("admin")}, 403, middleware.ErrForbidden},
		{"no HTTP request for MatchRequest", good, []middleware.Requirement{middleware.MatchRequest(func(*http.Request, *middleware.Claims) error { return nil })}, 403, middleware.ErrForbidden},
		{"empty", "", nil, 401, middleware.ErrNoToken},
		{"not b64token", "a,b", nil, 400, middleware.ErrMalformed},
		{"oversized", strings.Repeat("a", middleware.MaxTokenSize+1), nil, 400, middleware.ErrMalformed},
		{"unknown", "unknown-token", nil, 401, middleware.ErrInactive},
	} {
		ctx, err := s.mw.Check(parent, tt.token, tt.reqs...)
		c, ok := middleware.ClaimsFromContext(ctx)
		switch {
		case tt.wantStatus == 200:
			if err != nil || !ok || c.Subject != "u-1" || ctx.Value(key{}) != "v" {
				t.Errorf("%s: Check() = %v, %v; want the claims in a context derived from ctx", tt.name, c, err)
			}
			if _, ok := middleware.RequestFromContext(ctx); ok {
				t.Errorf("%s: RequestFromContext(Check()) ok, want no HTTP request", tt.name)
			}
		case err == nil || err.StatusCode != tt.wantStatus || !errors.Is(err, tt.wantErr) || ok || ctx != parent:
			t.Errorf("%s: Check() = claims %v, %+v; want ctx unchanged and %d wrapping %v", tt.name, ok, err, tt.wantStatus, tt.wantErr)
		}
	}
	if n := s.as.Calls(); n != 2 {
		t.Errorf("introspections = %d, want 2 (the good and the unknown token)", n)
	}

	// A transport's flow: metadata values, then Check.
	token, e := middleware.ParseAuthorization([]string{"Bearer " + good})
	if e != nil {
		t.Fatal(e)
	}
	if _, e := s.mw.Check(context.Background(), token); e != nil {
		t.Errorf("Check(ParseAuthorization()) = %v", e)
	}

	opt := newStack(t, project, middleware.WithCredentialsOptional())
	if ctx, err := opt.mw.Check(parent, ""); err != nil || ctx != parent {
		t.Errorf("Check(\"\") with optional credentials = %v, %v; want ctx itself, anonymous", ctx, err)
	}
	if _, err := opt.mw.Check(parent, "", middleware.Role("reader")); err == nil || err.StatusCode != 401 {
		t.Errorf("Check(\"\", Role) with optional credentials = %v, want 401", err)
	}
}

// sourcesServer serves whoami on a real loopback server behind a
// middleware with opts.
func sourcesServer(t *testing.T, opts ...middleware.Option) (*stack, *httptest.Server) {
	t.Helper()
	s := newStack(t, project, opts...)
	srv := httptest.NewServer(s.mw.Wrap(http.HandlerFunc(whoami)))
	t.Cleanup(srv.Close)
	return s, srv
}

type sent struct {
	query   string
	headers map[string][]string
}

func get(t *testing.T, srv *httptest.Server, r sent) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api"+r.query, nil)
	for k, vs := range r.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestTokenSources(t *testing.T) {
	t.Parallel()
	def, defSrv := sourcesServer(t)
	tok := def.mint(fakeas.Token{Subject: "u-1"})
	q := "?access_token=" + url.QueryEscape(tok)
	bearer := map[string][]string{"Authorization": {"Bearer " + tok}}

	// The default: the Authorization header alone; the query is no source.
	for _, tt := range []struct {
		name string
		r    sent
		want int
	}{
		{"header", sent{headers: bearer}, 200},
		{"query refused unless enabled", sent{query: q}, 401},
		{"cookie refused unless enabled", sent{headers: map[string][]string{"Cookie": {"at=" + tok}}}, 401},
		{"header and ignored query", sent{query: q, headers: bearer}, 200},
	} {
		if code, body, _ := get(t, defSrv, tt.r); code != tt.want {
			t.Errorf("default sources, %s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}

	custom := middleware.TokenSourceFunc(func(r *http.Request) (string, error) {
		v := r.Header.Values("X-Token")
		if len(v) > 1 {
			return "", errors.New("two X-Token headers")
		}
		if len(v) == 0 {
			return "", nil
		}
		return v[0], nil
	})
	s, srv := sourcesServer(t, middleware.WithTokenSource(middleware.FromAuthorization(), middleware.FromQuery(), middleware.FromCookie("at"), custom))
	tok = s.mint(fakeas.Token{Subject: "u-1"})
	q = "?access_token=" + url.QueryEscape(tok)
	bearer = map[string][]string{"Authorization": {"Bearer " + tok}}
	for _, tt := range []struct {
		name      string
		r         sent
		want      int
		wantDesc  string
		wantCache string
	}{
		{"header", sent{headers: bearer}, 200, "", ""},
		{"query", sent{query: q}, 200, "", "private"},
		{"cookie", sent{headers: map[string][]string{"Cookie": {"other=1; at=" + tok}}}, 200, "", ""},
		{"custom", sent{headers: map[string][]string{"X-Token": {tok}}}, 200, "", ""},
		{"header and query", sent{query: q, headers: bearer}, 400, "more than one way", ""},
		{"header and a percent-encoded query key", sent{query: "?access%5Ftoken=" + url.QueryEscape(tok), headers: bearer}, 400, "more than one way", ""},
		{"percent-encoded query key", sent{query: "?access%5Ftoken=" + url.QueryEscape(tok)}, 200, "", "private"},
		{"header and cookie", sent{headers: map[string][]string{"Authorization": {"Bearer " + tok}, "Cookie": {"at=" + tok}}}, 400, "more than one way", ""},
		{"query and custom", sent{query: q, headers: map[string][]string{"X-Token": {tok}}}, 400, "more than one way", ""},
		{"two query parameters", sent{query: q + "&access_token=x"}, 400, "more than one access_token", ""},
		{"empty query parameter", sent{query: "?access_token="}, 400, "empty access_token", ""},
		{"oversized query parameter", sent{query: "?access_token=" + strings.Repeat("a", middleware.MaxTokenSize+1)}, 400, "8 KiB", ""},
		{"malformed query token", sent{query: "?access_token=a%2Cb"}, 400, "b64token", ""},
		{"two cookies", sent{headers: map[string][]string{"Cookie": {"at=" + tok + "; at=x"}}}, 400, "more than one at cookie", ""},
		{"two custom headers", sent{headers: map[string][]string{"X-Token": {tok, tok}}}, 400, "malformed token", ""},
		{"malformed header with a good query", sent{query: q, headers: map[string][]string{"Authorization": {"Bearer "}}}, 400, "without a token", ""},
		{"other scheme and a good cookie", sent{headers: map[string][]string{"Authorization": {"Basic eDp5"}, "Cookie": {"at=" + tok}}}, 200, "", ""},
		{"empty cookie", sent{headers: map[string][]string{"Cookie": {"at="}}}, 401, "missing bearer token", ""},
		{"none", sent{}, 401, "missing bearer token", ""},
	} {
		code, body, h := get(t, srv, tt.r)
		if code != tt.want || !strings.Contains(body, tt.wantDesc) || h.Get("Cache-Control") != tt.wantCache && tt.want == 200 {
			t.Errorf("%s: %d %s (Cache-Control %q), want %d with %q (Cache-Control %q)", tt.name, code, body, h.Get("Cache-Control"), tt.want, tt.wantDesc, tt.wantCache)
		}
		if strings.Contains(body, "two X-Token") {
			t.Errorf("%s: a custom source's error text reached the client: %s", tt.name, body)
		}
	}
	if n := s.as.Calls(); n != 1 {
		t.Errorf("introspections = %d, want 1: refused requests never reach the server", n)
	}
	if _, err := middleware.New(s.client, project, middleware.WithTokenSource()); err == nil {
		t.Error("New(WithTokenSource()) err = nil, want an error: no source")
	}
}

// TestRequirementComparesPath: a route compares its {org} path parameter
// with the caller's organization; the request reaches the requirement
// without an allocation. Not parallel: testing.AllocsPerRun.
func TestRequirementComparesPath(t *testing.T) {
	s := newStack(t, project)
	ownOrg := middleware.MatchRequest(func(r *http.Request, c *middleware.Claims) error {
		if r.PathValue("org") != c.OrgID {
			return &middleware.Error{StatusCode: http.StatusForbidden, Code: middleware.CodeInsufficientScope,
				Description: "token is for another organization", Err: middleware.ErrForbidden}
		}
		return nil
	})
	var sawMethod string
	byHand := func(ctx context.Context, c *middleware.Claims) error {
		r, ok := middleware.RequestFromContext(ctx)
		if !ok {
			return errors.New("no request")
		}
		sawMethod = r.Method
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orgs/{org}/items", s.mw.Require(ownOrg, byHand)(http.HandlerFunc(whoami)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tok := s.mint(fakeas.Token{OrgID: "acme"})
	for path, want := range map[string]int{"/orgs/acme/items": 200, "/orgs/umbrella/items": 403, "/orgs/acme%2Fx/items": 403} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	if sawMethod != http.MethodGet {
		t.Errorf("the requirement saw method %q, want GET", sawMethod)
	}

	// Reaching the request costs no allocation over a plain requirement.
	allocs := func(reqs ...middleware.Requirement) float64 {
		h := s.mw.Require(reqs...)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		req := httptest.NewRequest(http.MethodGet, "/orgs/acme/items", nil)
		req.SetPathValue("org", "acme")
		req.Header.Set("Authorization", "Bearer "+tok)
		w := discardWriter{h: http.Header{}}
		return testing.AllocsPerRun(100, func() { h.ServeHTTP(w, req) })
	}
	if plain, withReq := allocs(func(context.Context, *middleware.Claims) error { return nil }), allocs(ownOrg); withReq > plain {
		t.Errorf("allocations per request: %v with a requirement reading the request, %v without", withReq, plain)
	}
}

func TestValidator(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"good-client": true}
	var sawPath string
	s := newStack(t, project,
		middleware.WithValidator(func(ctx context.Context, c *middleware.Claims) error {
			if r, ok := middleware.RequestFromContext(ctx); ok {
				sawPath = r.URL.Path
			}
			if !allowed[c.ClientID] {
				return errors.New("client " + c.ClientID + " is not allowed")
			}
			return nil
		}),
		middleware.WithValidator(func(ctx context.Context, c *middleware.Claims) error {
			if c.Response().TokenType != "Bearer" {
				return &middleware.Error{StatusCode: 401, Code: middleware.CodeInvalidToken, Description: "wrong token type", Err: middleware.ErrPolicy}
			}
			return nil
		}),
		middleware.WithValidator(nil))
	good := s.mint(fakeas.Token{ClientID: "good-client"})
	bad := s.mint(fakeas.Token{ClientID: "evil-client"})
	for range 2 { // the second time from the cache
		check(t, s.do("/api", "Bearer "+good), wantResp{status: 200})
		rec := s.do("/api/admin", "Bearer "+bad)
		check(t, rec, wantResp{401, `Bearer realm="api", error="invalid_token", error_description="token is not accepted by this API"`, "invalid_token", "not accepted", ""})
		if strings.Contains(rec.Body.String(), "evil") {
			t.Errorf("the validator's error text reached the client: %s", rec.Body)
		}
	}
	if sawPath != "/api/admin" {
		t.Errorf("the validator saw path %q, want /api/admin", sawPath)
	}
	if _, err := s.mw.Check(context.Background(), bad); err == nil || !errors.Is(err, middleware.ErrPolicy) {
		t.Errorf("Check(disallowed client) = %v, want ErrPolicy", err)
	}
}

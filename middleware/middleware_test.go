package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

const project = "311111111111111111"

type stack struct {
	as       *fakeas.Server
	clientID string // the API application's client ID
	client   *introspect.Client
	mw       *middleware.Middleware
	handler  http.Handler
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newStack starts a fake AS and protects a mux like the examples do:
// /api (any valid token), /api/admin (role admin), /api/write (scope write).
func newStack(t testing.TB, audience string, opts ...middleware.Option) *stack {
	t.Helper()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, clientID := as.NewApp(project)
	key, err := clientauth.ParseKey(keyJSON)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := key.PrivateKeyJWT(as.Issuer, clientauth.WithReuse())
	client, err := introspect.New(as.Issuer+fakeas.IntrospectPath, auth)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts = append([]middleware.Option{middleware.WithProjectID(project), middleware.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	mw, err := middleware.New(client, audience, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api", mw.Wrap(http.HandlerFunc(whoami)))
	mux.Handle("/api/admin", mw.Require(middleware.Role("admin"))(http.HandlerFunc(whoami)))
	mux.Handle("/api/write", mw.Require(middleware.Scope("write"))(http.HandlerFunc(whoami)))
	return &stack{as: as, clientID: clientID, client: client, mw: mw, handler: mux, logs: logs}
}

func whoami(w http.ResponseWriter, r *http.Request) {
	c, ok := middleware.ClaimsFromContext(r.Context())
	if !ok {
		fmt.Fprint(w, "anonymous")
		return
	}
	fmt.Fprintf(w, "%s %s %v", c.Subject, c.OrgID, c.Roles.Names())
}

func (s *stack) do(path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, h := range header {
		req.Header.Add("Authorization", h)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

func (s *stack) mint(t fakeas.Token) string {
	if t.Audience == nil {
		t.Audience = []string{project}
	}
	if t.Subject == "" {
		t.Subject = "user-1"
	}
	return s.as.Mint(t)
}

type wantResp struct {
	status    int
	challenge string // exact WWW-Authenticate, or "" for none
	code      string // JSON body "error"
	descIn    string
	retry     string
}

func check(t *testing.T, rec *httptest.ResponseRecorder, want wantResp) {
	t.Helper()
	if rec.Code != want.status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want.status, rec.Body)
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != want.challenge {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want.challenge)
	} else if got != "" {
		if err := parseChallenge(got); err != nil {
			t.Errorf("WWW-Authenticate = %q: a strict RFC 6750 parser refuses it: %v", got, err)
		}
	}
	if got := rec.Header().Get("Retry-After"); got != want.retry {
		t.Errorf("Retry-After = %q, want %q", got, want.retry)
	}
	if want.code == "" {
		return
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	if body.Error != want.code || !strings.Contains(body.Description, want.descIn) {
		t.Errorf("body = %+v, want error %q with %q in the description", body, want.code, want.descIn)
	}
}

const hint = "request the token with scope urn:zitadel:iam:org:project:id:" + project + ":aud"

func TestErrorTable(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	good := s.mint(fakeas.Token{Roles: map[string]map[string]string{"reader": {"o1": "d"}}, Scopes: []string{"openid"}})
	future := s.mint(fakeas.Token{Extra: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}})
	noAud := s.mint(fakeas.Token{Audience: []string{"some-other-project"}})

	tests := []struct {
		name   string
		path   string
		header []string
		want   wantResp
	}{
		{"no credentials", "/api", nil, wantResp{401, `Bearer realm="api"`, "unauthorized", "missing bearer token", ""}},
		{"other scheme", "/api", []string{"Basic dXNlcjpwYXNz"}, wantResp{401, `Bearer realm="api"`, "unauthorized", "", ""}},
		{"empty bearer", "/api", []string{"Bearer "}, wantResp{400, `Bearer realm="api", error="invalid_request", error_description="Bearer scheme without a token"`, "invalid_request", "without a token", ""}},
		{"malformed token", "/api", []string{"Bearer a,b"}, wantResp{400, `Bearer realm="api", error="invalid_request", error_description="token has characters outside the RFC 6750 b64token set"`, "invalid_request", "b64token", ""}},
		{"two headers", "/api", []string{"Bearer " + good, "Bearer " + good}, wantResp{400, `Bearer realm="api", error="invalid_request", error_description="more than one Authorization header"`, "invalid_request", "more than one", ""}},
		{"oversized", "/api", []string{"Bearer " + strings.Repeat("a", 9000)}, wantResp{400, `Bearer realm="api", error="invalid_request", error_description="Authorization header exceeds 8 KiB"`, "invalid_request", "8 KiB", ""}},
		{"inactive", "/api", []string{"Bearer unknown-token"}, wantResp{401, `Bearer realm="api", error="invalid_token", error_description="token is not active: expired, revoked, or not issued for this API; ` + hint + `"`, "invalid_token", hint, ""}},
		{"token without project audience", "/api", []string{"Bearer " + noAud}, wantResp{401, `Bearer realm="api", error="invalid_token", error_description="token is not active: expired, revoked, or not issued for this API; ` + hint + `"`, "invalid_token", hint, ""}},
		{"not yet valid", "/api", []string{"Bearer " + future}, wantResp{401, `Bearer realm="api", error="invalid_token", error_description="token is not valid yet"`, "invalid_token", "not valid yet", ""}},
		{"missing role", "/api/admin", []string{"Bearer " + good}, wantResp{403, `Bearer realm="api", error="insufficient_scope", error_description="requires project role 'admin'"`, "insufficient_scope", `requires project role "admin"`, ""}},
		{"missing scope", "/api/write", []string{"Bearer " + good}, wantResp{403, `Bearer realm="api", error="insufficient_scope", error_description="requires scope 'write'", scope="write"`, "insufficient_scope", `requires scope "write"`, ""}},
		{"scheme case-insensitive", "/api", []string{"bEaReR " + good}, wantResp{200, "", "", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, s.do(tt.path, tt.header...), tt.want)
		})
	}
}

func TestMalformedTokensNeverReachTheServer(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	for _, h := range []string{"Bearer a,b", "Bearer tok en", "Bearer é", "Bearer ab=c"} {
		if rec := s.do("/api", h); rec.Code != 400 {
			t.Errorf("%q: %d, want 400", h, rec.Code)
		}
	}
	if n := s.as.Calls(); n != 0 {
		t.Errorf("%d introspections for malformed tokens, want 0", n)
	}
}

func TestWrongAudienceOnActiveToken(t *testing.T) {
	t.Parallel()
	// The AS calls the token active (its aud names our app's project), but
	// this middleware is configured for another API: refused, with the hint.
	s := newStack(t, "another-api", middleware.WithProjectID("another-api"))
	tok := s.mint(fakeas.Token{})
	check(t, s.do("/api", "Bearer "+tok), wantResp{401,
		`Bearer realm="api", error="invalid_token", error_description="token audience does not include this API; request the token with scope urn:zitadel:iam:org:project:id:another-api:aud"`,
		"invalid_token", "urn:zitadel:iam:org:project:id:another-api:aud", ""})
}

func TestExpiredCachedToken(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second) // exp has whole seconds: line the clock up with it
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newStack(t, project, middleware.WithClock(clock), middleware.WithLeeway(0))
	tok := s.mint(fakeas.Token{Expiry: now.Add(time.Minute)})
	check(t, s.do("/api", "Bearer "+tok), wantResp{status: 200})
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	check(t, s.do("/api", "Bearer "+tok), wantResp{401, `Bearer realm="api", error="invalid_token", error_description="token has expired"`, "invalid_token", "expired", ""})
	if n := s.as.Calls(); n != 1 {
		t.Errorf("calls = %d, want 1: exp is checked on the cache hit", n)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     func(w http.ResponseWriter) bool
		wantRetry string
	}{
		{"503 with Retry-After", func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			return true
		}, "7"},
		{"500", func(w http.ResponseWriter) bool { w.WriteHeader(500); return true }, "5"},
		{"garbage", func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{"))
			return true
		}, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, project)
			tok := s.mint(fakeas.Token{})
			s.as.SetFault(tt.fault)
			rec := s.do("/api", "Bearer "+tok)
			check(t, rec, wantResp{503, "", "temporarily_unavailable", "retry later", tt.wantRetry})
			if strings.Contains(s.logs.String(), tok) {
				t.Errorf("log contains the token: %s", s.logs)
			}
			s.as.SetFault(nil)
			check(t, s.do("/api", "Bearer "+tok), wantResp{status: 200})
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, project)
		tok := s.mint(fakeas.Token{})
		s.as.Close()
		check(t, s.do("/api", "Bearer "+tok), wantResp{503, "", "temporarily_unavailable", "retry later", "5"})
	})
}

func TestOutageLogsAreRateLimited(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	s.as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(503); return true })
	for i := range 20 {
		if rec := s.do("/api", fmt.Sprint("Bearer tok", i)); rec.Code != 503 {
			t.Fatalf("status %d, want 503", rec.Code)
		}
	}
	if n := strings.Count(s.logs.String(), "authorization server unavailable"); n < 1 || n > 2 {
		t.Errorf("20 refused requests within a second logged %d lines, want 1 (2 if the second turned)", n)
	}
}

func TestClientAuthRejectedIs500AndLogged(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{})
	s.as.SetFault(func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"key \"abc\" not found\n"}`))
		return true
	})
	rec := s.do("/api", "Bearer "+tok)
	check(t, rec, wantResp{500, "", "server_error", "internal error", ""})
	if strings.Contains(rec.Body.String(), "abc") {
		t.Errorf("body %q leaks upstream detail", rec.Body)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "check the key file") {
		t.Errorf("logs = %q, want an ERROR that says to check the key file", logs)
	}
	if strings.Contains(logs, tok) {
		t.Errorf("logs contain the token")
	}
}

func TestChecksRunOnCacheHits(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	reader := s.mint(fakeas.Token{Roles: map[string]map[string]string{"reader": {"o": "d"}}, Scopes: []string{"write"}})
	check(t, s.do("/api", "Bearer "+reader), wantResp{status: 200})
	check(t, s.do("/api/write", "Bearer "+reader), wantResp{status: 200})
	for range 3 {
		if rec := s.do("/api/admin", "Bearer "+reader); rec.Code != 403 {
			t.Errorf("cached token without role admin: status %d, want 403", rec.Code)
		}
	}
	// A second middleware on the same introspection client, for another
	// audience, must refuse the cached token.
	other, _ := middleware.New(s.client, "another-api")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	rec := httptest.NewRecorder()
	other.Wrap(http.HandlerFunc(whoami)).ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("other audience on a cached token: status %d, want 401", rec.Code)
	}
	if n := s.as.Calls(); n != 1 {
		t.Errorf("calls = %d, want 1: every check above ran on the cached result", n)
	}
}

func TestClaimsInContext(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{Subject: "u-42", OrgID: "org-7", Roles: map[string]map[string]string{"admin": {"org-7": "d"}, "reader": {"org-7": "d"}}})
	rec := s.do("/api/admin", "Bearer "+tok)
	if rec.Code != 200 || rec.Body.String() != "u-42 org-7 [admin reader]" {
		t.Errorf("GET /api/admin = %d %q, want 200 with the claims", rec.Code, rec.Body)
	}
}

func TestPersonalAccessTokenAudience(t *testing.T) {
	t.Parallel()
	// ZITADEL personal access tokens name only the API's client ID.
	s := newStack(t, project)
	pat := s.mint(fakeas.Token{Audience: []string{s.clientID}})
	if rec := s.do("/api", "Bearer "+pat); rec.Code != 401 {
		t.Errorf("client-ID-only token without WithAudience: status %d, want 401", rec.Code)
	}
	mw, err := middleware.New(s.client, project, middleware.WithAudience(s.clientID))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+pat)
	rec := httptest.NewRecorder()
	mw.Wrap(http.HandlerFunc(whoami)).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("client-ID-only token with WithAudience(clientID): status %d, want 200", rec.Code)
	}
}

func TestCredentialsOptional(t *testing.T) {
	t.Parallel()
	s := newStack(t, project, middleware.WithCredentialsOptional())
	if rec := s.do("/api"); rec.Code != 200 || rec.Body.String() != "anonymous" {
		t.Errorf("anonymous GET /api = %d %q, want 200 anonymous", rec.Code, rec.Body)
	}
	if rec := s.do("/api", "Bearer bad-token"); rec.Code != 401 {
		t.Errorf("bad token with optional credentials = %d, want 401", rec.Code)
	}
	if rec := s.do("/api/admin"); rec.Code != 401 {
		t.Errorf("anonymous GET of a route with requirements = %d, want 401", rec.Code)
	}
}

func TestCustomRequirementAndErrorHandler(t *testing.T) {
	t.Parallel()
	var got error
	s := newStack(t, project, middleware.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
		got = err
		w.WriteHeader(http.StatusTeapot)
	}))
	tok := s.mint(fakeas.Token{})
	h := s.mw.Require(func(context.Context, *middleware.Claims) error { return errors.New("secret detail") })(http.HandlerFunc(whoami))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var e *middleware.Error
	if rec.Code != http.StatusTeapot || !errors.Is(got, middleware.ErrForbidden) || !errors.As(got, &e) || e.StatusCode != 403 || strings.Contains(e.Description, "secret") {
		t.Errorf("custom requirement: status %d, err %v", rec.Code, got)
	}
}

func TestChallengeEscaping(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	desc := "role \"x\" or C:\\x\r\nSet-Cookie: a=b\x00é"
	middleware.DefaultErrorHandler("r\"e\\alm")(rec, httptest.NewRequest("GET", "/", nil), &middleware.Error{
		StatusCode: 403, Code: "insufficient_scope", Description: desc, Scope: `a"b\c`, Err: middleware.ErrForbidden,
	})
	want := `Bearer realm="r\"e\\alm", error="insufficient_scope", error_description="role 'x' or C:/xSet-Cookie: a=b", scope="a'b/c"`
	got := rec.Header().Get("WWW-Authenticate")
	if got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	if err := parseChallenge(got); err != nil {
		t.Errorf("WWW-Authenticate = %q: a strict RFC 6750 parser refuses it: %v", got, err)
	}
	if len(rec.Header().Values("Set-Cookie")) != 0 {
		t.Errorf("header injected")
	}
	var body struct{ Error_description string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error_description != desc {
		t.Errorf("body description = %q, %v; want the full text %q", body.Error_description, err, desc)
	}
}

// parseChallenge is a strict parser of RFC 6750 §3's challenge: realm is a
// quoted-string (escapes allowed), error, error_description and scope allow
// only %x20-21 / %x23-5B / %x5D-7E, with no escapes.
func parseChallenge(h string) error {
	rest, ok := strings.CutPrefix(h, "Bearer")
	if !ok {
		return fmt.Errorf("no Bearer scheme")
	}
	if rest == "" {
		return nil
	}
	if rest, ok = strings.CutPrefix(rest, " "); !ok {
		return fmt.Errorf("want a space after Bearer")
	}
	for first := true; rest != ""; first = false {
		if !first {
			if rest, ok = strings.CutPrefix(rest, ", "); !ok {
				return fmt.Errorf("want a comma at %q", rest)
			}
		}
		name, after, ok := strings.Cut(rest, `="`)
		if !ok {
			return fmt.Errorf("want name=\"value\" at %q", rest)
		}
		i := 0
		for ; i < len(after) && after[i] != '"'; i++ {
			c := after[i]
			switch {
			case name == "realm" && c == '\\' && i+1 < len(after):
				i++ // quoted-pair
			case c < 0x20 || c > 0x7e || c == '\\':
				return fmt.Errorf("%s has %q", name, c)
			}
		}
		if i == len(after) {
			return fmt.Errorf("%s is not terminated", name)
		}
		rest = after[i+1:]
	}
	return nil
}

func TestAuthenticateForFrameworks(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{Subject: "u-9"})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	ctx, err := s.mw.Authenticate(req)
	if c, ok := middleware.ClaimsFromContext(ctx); err != nil || !ok || c.Subject != "u-9" {
		t.Fatalf("Authenticate() = %+v, %v", c, err)
	}
	ctx, err = s.mw.Authenticate(req, middleware.Role("admin"))
	if err == nil || ctx != req.Context() {
		t.Fatalf("Authenticate(missing role) = %v, %v; want the request's context and an error", ctx, err)
	}
	rec := httptest.NewRecorder()
	s.mw.WriteError(rec, req, err)
	if rec.Code != 403 {
		t.Errorf("WriteError(Authenticate with missing role) status = %d, want 403", rec.Code)
	}
}

func TestNewContextRoundTrip(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := middleware.NewContext(context.WithValue(context.Background(), key{}, "v"), &middleware.Claims{Subject: "s"})
	c, ok := middleware.ClaimsFromContext(ctx)
	if !ok || c.Subject != "s" || ctx.Value(key{}) != "v" {
		t.Errorf("ClaimsFromContext(NewContext()) = %+v, %v; parent values kept: %v", c, ok, ctx.Value(key{}))
	}
	if _, ok := middleware.ClaimsFromContext(context.Background()); ok {
		t.Errorf("ClaimsFromContext(Background) ok = true")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := middleware.New(nil, "a"); err == nil {
		t.Error("New(nil, a) err = nil")
	}
	if _, err := middleware.New(&introspect.Client{}, ""); err == nil {
		t.Error("New(c, \"\") err = nil")
	}
	if _, err := middleware.New(&introspect.Client{}, "a", middleware.WithLeeway(-time.Second)); err == nil {
		t.Error("New with negative leeway err = nil")
	}
}

func BenchmarkWrap(b *testing.B) {
	s := newStack(b, project)
	tok := s.mint(fakeas.Token{Roles: map[string]map[string]string{"admin": {"o": "d"}}})
	// ZITADEL opaque tokens are about 250 characters; pad the fake's token
	// to that size so that hashing and validation cost what they do there.
	long := tok + strings.Repeat("x", 256-len(tok))
	s.as.Alias(long, tok)
	tok = long
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	protected := s.mw.Require(middleware.Role("admin"))(bare)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := discardWriter{h: http.Header{}}
	protected.ServeHTTP(w, req) // warm the cache
	for name, h := range map[string]http.Handler{"bare": bare, "cacheHit": protected} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// BenchmarkWrapParallel is the cache-hit path from all cores, with one hot
// token and with 1,000 tokens (about 250 bytes each, like ZITADEL's).
func BenchmarkWrapParallel(b *testing.B) {
	s := newStack(b, project)
	h := s.mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var tokens []string
	for range 1000 {
		tok := s.mint(fakeas.Token{Roles: map[string]map[string]string{"admin": {"o": "d"}}})
		long := tok + strings.Repeat("x", 256-len(tok))
		s.as.Alias(long, tok)
		tokens = append(tokens, long)
	}
	for _, n := range []int{1, 1000} {
		reqs := make([]*http.Request, n)
		for i := range reqs {
			reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
			reqs[i].Header.Set("Authorization", "Bearer "+tokens[i])
			h.ServeHTTP(discardWriter{h: http.Header{}}, reqs[i]) // warm the cache
		}
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := discardWriter{h: http.Header{}}
				i := 0
				for pb.Next() {
					h.ServeHTTP(w, reqs[i%n])
					i += 7
				}
			})
		})
	}
}

// TestNilOptionsKeepDefaults: a nil logger, clock, error handler or meter
// provider is ignored, as in package introspect.
func TestNilOptionsKeepDefaults(t *testing.T) {
	t.Parallel()
	s := newStack(t, project, middleware.WithLogger(nil), middleware.WithClock(nil), middleware.WithErrorHandler(nil), middleware.WithMeterProvider(nil))
	tok := s.mint(fakeas.Token{})
	check(t, s.do("/api", "Bearer "+tok), wantResp{status: 200})
	check(t, s.do("/api"), wantResp{401, `Bearer realm="api"`, "unauthorized", "missing bearer token", ""})
	s.as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(503); return true })
	check(t, s.do("/api", "Bearer other-token"), wantResp{503, "", "temporarily_unavailable", "retry later", "5"})
}

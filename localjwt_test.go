package tokenguard_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/events"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// localWorld is the development server issuing JWT access tokens and an
// API protected by a guard with Config.LocalJWT, on a clock of the test's.
type localWorld struct {
	srv           *devserver.Server
	project       devserver.Project
	admin, reader devserver.ServiceUser
	guard         *tokenguard.Guard
	handler       http.Handler
	clock         *fakeClock
	metrics       *sdkmetric.ManualReader
	jwksFetches   atomic.Int64
	held          atomic.Pointer[chan struct{}] // introspections wait for it to close
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const localMaxTTL = time.Minute

func newLocalWorld(t *testing.T) *localWorld {
	t.Helper()
	w := &localWorld{clock: &fakeClock{t: time.Now()}, metrics: sdkmetric.NewManualReader()}
	srv, err := devserver.Start(devserver.WithJWTAccessTokens(), devserver.WithRequestObserver(func(r *http.Request) {
		if r.URL.Path == devserver.KeysPath {
			w.jwksFetches.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.SetIntrospectionFault(func(_ http.ResponseWriter, r *http.Request) bool {
		if ch := w.held.Load(); ch != nil {
			select {
			case <-*ch:
			case <-r.Context().Done():
			}
		}
		return false
	})
	w.srv, w.project = srv, srv.CreateProject("API")
	api, _ := srv.CreateAPIApp(w.project.ID)
	w.admin, _ = srv.CreateServiceUser("admin", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"admin", "reader"}})
	w.reader, _ = srv.CreateServiceUser("reader", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"reader"}})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(w.metrics))
	w.guard, err = tokenguard.New(context.Background(), tokenguard.Config{
		Issuer: srv.Issuer(), KeyFile: writeKey(t, api.KeyJSON), ProjectID: w.project.ID, LocalJWT: true,
		IntrospectOptions: []introspect.Option{introspect.WithClock(w.clock.Now), introspect.WithMaxTTL(localMaxTTL), introspect.WithMeterProvider(mp)},
	}, discardLogs(), middleware.WithClock(w.clock.Now), middleware.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.guard.Close(); err != nil {
			t.Errorf("Guard.Close() = %v", err)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", w.guard.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		_ = json.NewEncoder(rw).Encode(map[string]any{"sub": c.Subject, "roles": c.Roles.Names()})
	})))
	mux.Handle("GET /api/admin", w.guard.Require(middleware.Role("admin"))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	w.handler = mux
	return w
}

// hold makes introspections wait until the returned func is called.
func (w *localWorld) hold() (release func()) {
	ch := make(chan struct{})
	w.held.Store(&ch)
	return func() { w.held.Store(nil); close(ch) }
}

func (w *localWorld) mint(t *testing.T, u devserver.ServiceUser, o devserver.TokenOptions) string {
	t.Helper()
	o.JWT = true
	if o.ProjectIDs == nil {
		o.ProjectIDs = []string{w.project.ID}
	}
	tok, err := w.srv.MintToken(u.UserID, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (w *localWorld) get(path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	w.handler.ServeHTTP(rec, req)
	return rec
}

// confirmed waits until the guard's cache holds the server's answer for tok.
func (w *localWorld) confirmed(t *testing.T, tok string) {
	t.Helper()
	waitFor(t, "the confirmation", func() bool {
		r, ok := w.guard.Client().Cached(context.Background(), tok)
		return ok && (!r.Active || !r.Local())
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLocalJWTFirstUseNeedsNoIntrospection(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	tokens := make([]string, 10)
	for i := range tokens {
		tokens[i] = w.mint(t, w.admin, devserver.TokenOptions{})
	}
	release := w.hold()
	for _, tok := range tokens {
		for _, path := range []string{"/api/me", "/api/admin", "/api/me"} {
			if rec := w.get(path, tok); rec.Code != http.StatusOK {
				t.Fatalf("GET %s with a new JWT while the server holds every introspection = %d %s", path, rec.Code, rec.Body)
			}
		}
	}
	if rec := w.get("/api/me", tokens[0]); !strings.Contains(rec.Body.String(), `"admin"`) {
		t.Errorf("GET /api/me = %s, want the JWT's roles", rec.Body)
	}
	got := points(t, w.metrics)
	for k, want := range map[string]int64{
		"tokenguard.decisions{outcome=allowed,source=local}": 10*3 + 1,
		"tokenguard.jwt.verifications{result=accepted}":      10,
		"tokenguard.decision.age{source=local}":              10*2 + 1, // the hits on local decisions
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	release()
	for _, tok := range tokens {
		w.confirmed(t, tok)
	}
	if n := w.srv.IntrospectionCalls(); n != 10 {
		t.Errorf("introspections = %d, want 10: one background confirmation per token", n)
	}
	for _, tok := range tokens {
		if rec := w.get("/api/me", tok); rec.Code != http.StatusOK {
			t.Errorf("GET /api/me after the confirmation = %d", rec.Code)
		}
	}
	got = points(t, w.metrics)
	for k, want := range map[string]int64{
		"tokenguard.decisions{outcome=allowed,source=introspected}": 10,
		"tokenguard.jwt.confirmations{result=active}":               10,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	if got["tokenguard.decision.age{source=introspected}"] < 10 {
		t.Errorf("tokenguard.decision.age{source=introspected} = %d, want at least 10", got["tokenguard.decision.age{source=introspected}"])
	}
	if n := w.jwksFetches.Load(); n != 1 {
		t.Errorf("JWKS fetches = %d, want 1", n)
	}
}

func TestLocalJWTWithoutRoleClaimsAsksTheServer(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	if err := w.srv.SetRoleAssertion(w.project.ID, false); err != nil {
		t.Fatal(err)
	}
	admin, reader := w.mint(t, w.admin, devserver.TokenOptions{}), w.mint(t, w.reader, devserver.TokenOptions{})
	release := w.hold()
	if rec := w.get("/api/me", admin); rec.Code != http.StatusOK {
		t.Fatalf("GET /api/me (no role needed) while introspection is held = %d", rec.Code)
	}
	release()
	if rec := w.get("/api/admin", admin); rec.Code != http.StatusOK {
		t.Errorf("GET /api/admin with a JWT without role claims = %d %s, want 200 from the introspected roles", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := w.get("/api/admin", reader); rec.Code != http.StatusForbidden || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("GET /api/admin as reader = %d %q, want 403 insufficient_scope", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// With role claims, the local decision is enough.
	if err := w.srv.SetRoleAssertion(w.project.ID, true); err != nil {
		t.Fatal(err)
	}
	withRoles := w.mint(t, w.admin, devserver.TokenOptions{})
	release = w.hold()
	defer release()
	if rec := w.get("/api/admin", withRoles); rec.Code != http.StatusOK {
		t.Errorf("GET /api/admin with role claims while introspection is held = %d", rec.Code)
	}
}

func TestLocalJWTRevokedWithinTheBound(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	tok := w.mint(t, w.reader, devserver.TokenOptions{})
	if rec := w.get("/api/me", tok); rec.Code != http.StatusOK {
		t.Fatalf("GET = %d", rec.Code)
	}
	w.confirmed(t, tok)
	if err := w.srv.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	// Within the max TTL the cached answer stands, as for opaque tokens.
	w.clock.Advance(localMaxTTL - time.Second)
	if rec := w.get("/api/me", tok); rec.Code != http.StatusOK {
		t.Fatalf("GET within the max TTL = %d, want 200 (the staleness bound)", rec.Code)
	}
	// Past it, the next request is decided locally and confirmed: the
	// confirmation's inactive answer refuses the token.
	w.clock.Advance(2 * time.Second)
	w.get("/api/me", tok)
	waitFor(t, "the revoked JWT refused", func() bool { return w.get("/api/me", tok).Code == http.StatusUnauthorized })
	// And it stays refused, even once the negative entry is gone.
	w.clock.Advance(introspect.DefaultNegativeTTL + time.Second)
	release := w.hold()
	done := make(chan int)
	go func() { done <- w.get("/api/me", tok).Code }()
	time.Sleep(50 * time.Millisecond)
	release()
	if code := <-done; code != http.StatusUnauthorized {
		t.Errorf("GET after the negative TTL = %d, want 401: no new local decision", code)
	}
}

func TestLocalJWTInvalidationsActAtOnce(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	// InvalidateSubject, as a user.locked webhook calls it.
	tok := w.mint(t, w.reader, devserver.TokenOptions{})
	if rec := w.get("/api/me", tok); rec.Code != http.StatusOK {
		t.Fatalf("GET = %d", rec.Code)
	}
	w.confirmed(t, tok)
	if err := w.srv.LockUser(w.reader.UserID, true); err != nil {
		t.Fatal(err)
	}
	w.guard.InvalidateSubject(w.reader.UserID)
	if rec := w.get("/api/me", tok); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET right after InvalidateSubject = %d, want 401", rec.Code)
	}
	// A user.token.removed event through package events: InvalidateTokenID.
	var h atomic.Pointer[http.Handler]
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(rw, r) }))
	t.Cleanup(hook.Close)
	eh, err := events.NewHandler(w.srv.AddEventTarget(hook.URL), w.guard, events.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = eh
	h.Store(&handler)
	other := w.mint(t, w.admin, devserver.TokenOptions{})
	if rec := w.get("/api/me", other); rec.Code != http.StatusOK {
		t.Fatalf("GET = %d", rec.Code)
	}
	w.confirmed(t, other)
	if err := w.srv.Revoke(other); err != nil { // sends user.token.removed before it returns
		t.Fatal(err)
	}
	if rec := w.get("/api/me", other); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET right after the token.removed event = %d, want 401", rec.Code)
	}
}

func TestLocalJWTPicksUpAKeyRotation(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	if rec := w.get("/api/me", w.mint(t, w.admin, devserver.TokenOptions{})); rec.Code != http.StatusOK {
		t.Fatalf("GET = %d", rec.Code)
	}
	if _, err := w.srv.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	rotated := w.mint(t, w.admin, devserver.TokenOptions{})
	release := w.hold()
	defer release()
	if rec := w.get("/api/admin", rotated); rec.Code != http.StatusOK {
		t.Fatalf("GET with a JWT of the new key while introspection is held = %d, want 200 decided locally", rec.Code)
	}
	if n := w.jwksFetches.Load(); n != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (the first and one refresh for the new kid)", n)
	}
}

func TestLocalJWTRefusesForgeries(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	good := w.mint(t, w.admin, devserver.TokenOptions{})
	set, err := jwk.Fetch(context.Background(), w.srv.Issuer()+devserver.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	kid := w.srv.SigningKeyID()
	key, _ := set.LookupKeyID(kid)
	var pub rsa.PublicKey
	if err := jwk.Export(key, &pub); err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PublicKey(&pub)
	pkix, _ := x509.MarshalPKIXPublicKey(&pub)
	payload := func(tok string) []byte {
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		return b
	}(good)
	hmacWith := func(secret []byte) string {
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, kid)
		tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	head, _ := json.Marshal(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"})
	none := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	expired := w.mint(t, w.admin, devserver.TokenOptions{Lifetime: time.Second})
	wrongIss := w.mint(t, w.admin, devserver.TokenOptions{Issuer: "https://evil.example.com"})
	before := w.srv.IntrospectionCalls()
	w.clock.Advance(time.Minute) // expired is a minute past its exp
	for name, tok := range map[string]string{
		"alg none":                               none,
		"HS256 with the public key (PKCS#1 PEM)": hmacWith(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der})),
		"HS256 with the public key (PKIX PEM)":   hmacWith(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})),
		"HS256 with the public key (DER)":        hmacWith(der),
		"HS256 with the JWK's modulus":           hmacWith(pub.N.Bytes()),
		"wrong iss":                              wrongIss,
		"expired":                                expired,
	} {
		rec := w.get("/api/me", tok)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("GET with a forged JWT (%s) = %d %q, want 401 invalid_token", name, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	if n := w.srv.IntrospectionCalls(); n != before {
		t.Errorf("introspections = %d, want %d: forgeries are refused locally", n, before)
	}
}

func TestLocalJWTWithoutTheProjectInAudience(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	tok := w.mint(t, w.admin, devserver.TokenOptions{ProjectIDs: []string{}})
	release := w.hold()
	rec := w.get("/api/me", tok)
	release()
	challenge := rec.Header().Get("WWW-Authenticate")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
		!strings.Contains(challenge, "urn:zitadel:iam:org:project:id:"+w.project.ID+":aud") {
		t.Errorf("GET with a JWT without the project in aud = %d %q, want 401 invalid_token naming the audience scope", rec.Code, challenge)
	}
}

// With DiscoverInBackground, a guard started while the server is down
// finds the JWKS once discovery succeeds, and then decides JWTs locally.
func TestLocalJWTWithDiscoveryInBackground(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	issuer := "http://" + addr
	srv, err := devserver.Start(devserver.WithIssuer(issuer), devserver.WithJWTAccessTokens())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var held atomic.Bool
	srv.SetIntrospectionFault(func(w http.ResponseWriter, _ *http.Request) bool {
		if held.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	project := srv.CreateProject("API").ID
	app, _ := srv.CreateAPIApp(project)
	user, _ := srv.CreateServiceUser("worker", devserver.Grant{ProjectID: project})
	clk := &fakeClock{t: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, KeyFile: writeKey(t, app.KeyJSON), ProjectID: project,
		DiscoverInBackground: true, LocalJWT: true, IntrospectOptions: []introspect.Option{introspect.WithClock(clk.Now)}},
		discardLogs(), middleware.WithClock(clk.Now))
	if err != nil {
		t.Fatalf("New with the server down: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	api := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	call := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, "/api", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec.Code
	}
	mint := func() string {
		tok, err := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project}, JWT: true})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if code := call(mint()); code != http.StatusServiceUnavailable {
		t.Errorf("JWT while the server is down = %d, want 503", code)
	}
	target, _ := url.Parse(srv.URL())
	up, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the issuer's port was taken meanwhile: %v", err)
	}
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = proxy.Serve(up) }()
	t.Cleanup(func() { proxy.Close() })
	clk.Advance(introspect.DeferredBackoffMax) // past every backoff
	if err := g.Ready(ctx); err != nil {
		t.Fatalf("Ready once the server is up = %v", err)
	}
	held.Store(true) // every introspection fails from now on: only a local decision can pass
	if code := call(mint()); code != http.StatusOK {
		t.Errorf("JWT once discovery succeeded, introspection failing = %d, want 200 decided locally", code)
	}
}

// TestLocalJWTRolesOfAnotherProject is the attack on a JWT for two
// projects: its user is admin in another project only, so the JWT's
// generic roles claim (the development server's and ZITADEL's: the roles
// of the project the token was requested for) holds that project's admin.
// This API's project must not read it as its own.
func TestLocalJWTRolesOfAnotherProject(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	other := w.srv.CreateProject("Other")
	mallory, err := w.srv.CreateServiceUser("mallory", devserver.Grant{ProjectID: other.ID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := w.mint(t, mallory, devserver.TokenOptions{ProjectIDs: []string{other.ID, w.project.ID}})
	// The guard's clock started with the world; creating a project and a
	// user (a key each) can take seconds on a loaded machine, and the new
	// token must not look issued in the guard's future.
	w.clock.Advance(time.Since(w.clock.Now()))
	if rec := w.get("/api/me", tok); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "admin") {
		t.Errorf("GET /api/me = %d %s, want 200 without the other project's roles", rec.Code, rec.Body)
	}
	if rec := w.get("/api/admin", tok); rec.Code != http.StatusForbidden {
		t.Errorf("GET /api/admin as admin of another project = %d, want 403", rec.Code)
	}
}

// TestLocalJWTRefusalSaysWhy: a JWT refused by local verification gets a
// description that names the reason, not the "not active ... request the
// audience scope" text of an inactive introspection answer, which would
// send the caller to fix the wrong thing.
func TestLocalJWTRefusalSaysWhy(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	tok := w.mint(t, w.admin, devserver.TokenOptions{})
	w.clock.Advance(-time.Minute) // this API's clock a minute behind the issuer's
	rec := w.get("/api/me", tok)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "JWT access token refused") ||
		!strings.Contains(rec.Body.String(), "not valid yet") || strings.Contains(rec.Body.String(), ":aud") {
		t.Errorf("GET /api/me with a JWT from the future = %d %s, want 401 saying it is not valid yet", rec.Code, rec.Body)
	}
}

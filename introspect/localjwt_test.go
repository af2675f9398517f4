package introspect_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
)

// jwtAS is an authorization server that issues JWT access tokens: a JWKS
// and an introspection endpoint that answers from the token's claims and
// its own list of revoked token IDs. It counts what reaches it, and can
// hold introspections (block) or fail them (status).
type jwtAS struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      map[string]*rsa.PrivateKey // by kid
	jwks      []jwk.Key                  // as published
	revoked   map[string]bool            // by jti
	block     chan struct{}              // introspections wait for it to close
	status    int                        // introspections answer it, when set
	discovery bool                       // serve a discovery document

	jwksFetches, introspections atomic.Int64
}

func startJWTAS(t *testing.T) *jwtAS {
	t.Helper()
	as := &jwtAS{keys: map[string]*rsa.PrivateKey{}, revoked: map[string]bool{}}
	as.srv = httptest.NewServer(http.HandlerFunc(as.serve))
	t.Cleanup(as.srv.Close)
	as.addKey(t, "k1", jwa.RS256())
	return as
}

// addKey publishes a new RSA key with kid, declaring alg.
func (as *jwtAS) addKey(t *testing.T, kid string, alg jwa.SignatureAlgorithm) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, alg)
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	as.mu.Lock()
	as.keys[kid] = priv
	as.jwks = append(as.jwks, pub)
	as.mu.Unlock()
}

// publish adds a key to the JWKS as it is (a symmetric one, one without alg).
func (as *jwtAS) publish(k jwk.Key) {
	as.mu.Lock()
	as.jwks = append(as.jwks, k)
	as.mu.Unlock()
}

func (as *jwtAS) issuer() string { return as.srv.URL }

func (as *jwtAS) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		as.mu.Lock()
		on := as.discovery
		as.mu.Unlock()
		if !on {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"introspection_endpoint":%q,"jwks_uri":%q}`, as.issuer(), as.issuer()+"/introspect", as.issuer()+"/jwks")
	case "/jwks":
		as.jwksFetches.Add(1)
		as.mu.Lock()
		set := jwk.NewSet()
		for _, k := range as.jwks {
			_ = set.AddKey(k)
		}
		as.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	case "/introspect":
		as.introspections.Add(1)
		as.mu.Lock()
		block, status := as.block, as.status
		as.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		claims := map[string]any{}
		if parts := strings.Split(r.PostFormValue("token"), "."); len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			_ = json.Unmarshal(b, &claims)
		}
		as.mu.Lock()
		jti, _ := claims["jti"].(string)
		active := jti != "" && !as.revoked[jti] && claims["iss"] == as.issuer() && as.verifies(r.PostFormValue("token"))
		as.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !active {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		claims["active"] = true
		claims["username"] = "alice@acme"
		claims[introspect.ClaimRoles] = map[string]any{"admin": map[string]any{"org1": "acme.localhost"}}
		_ = json.NewEncoder(w).Encode(claims)
	default:
		http.NotFound(w, r)
	}
}

// verifies reports whether token verifies with one of as's own keys, as the
// server that issued it would check. Callers hold mu.
func (as *jwtAS) verifies(token string) bool {
	for _, k := range as.jwks {
		if kid, _ := k.KeyID(); as.keys[kid] != nil {
			alg, _ := k.Algorithm()
			if _, err := jws.Verify([]byte(token), jws.WithKey(alg, &as.keys[kid].PublicKey)); err == nil {
				return true
			}
		}
	}
	return false
}

func (as *jwtAS) setBlock(ch chan struct{}) { as.mu.Lock(); as.block = ch; as.mu.Unlock() }
func (as *jwtAS) setStatus(s int)           { as.mu.Lock(); as.status = s; as.mu.Unlock() }
func (as *jwtAS) revoke(jti string)         { as.mu.Lock(); as.revoked[jti] = true; as.mu.Unlock() }

var jtiSeq atomic.Int64

// claims returns the claims of a good access token issued at now.
func (as *jwtAS) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": as.issuer(), "sub": "alice", "aud": []string{project}, "client_id": "alice",
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1)), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// sign signs claims with the key kid under alg, with header kid.
func (as *jwtAS) sign(t *testing.T, kid string, alg jwa.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	as.mu.Lock()
	priv := as.keys[kid]
	as.mu.Unlock()
	return signWith(t, alg, priv, kid, claims)
}

func signWith(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// unsigned builds a compact JWS with the given header and an empty
// signature, as alg none does.
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// localClient returns a Client of as with WithLocalJWT on the fake clock,
// closed at cleanup.
func localClient(t *testing.T, as *jwtAS, clk *clock, opts ...introspect.Option) *introspect.Client {
	t.Helper()
	opts = append([]introspect.Option{
		introspect.WithLocalJWT(introspect.LocalJWT{Issuer: as.issuer(), JWKSURL: as.issuer() + "/jwks"}),
		introspect.WithClock(clk.Now), introspect.WithRetries(0, 0), introspect.WithCircuitBreaker(0, 0),
	}, opts...)
	c, err := introspect.New(as.issuer()+"/introspect", clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return c
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLocalJWTDecidesWithoutWaitingForTheServer(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	as.setBlock(hold) // no introspection answers until released
	tokens := make([]string, 10)
	for i := range tokens {
		tokens[i] = as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	}
	for _, tok := range tokens {
		for range 3 {
			r, err := c.Introspect(context.Background(), tok)
			if err != nil || !r.Local() || r.Subject != "alice" || !r.HasAudience(project) {
				t.Fatalf("Introspect(JWT) = %+v, %v; want a local decision for alice", r, err)
			}
		}
	}
	// Every token's confirmation is in the air, one each, none waited for.
	eventually(t, "10 confirmations", func() bool { return as.introspections.Load() == 10 })
	close(hold)
	for _, tok := range tokens {
		eventually(t, "the confirmation's answer in the cache", func() bool {
			r, ok := c.Cached(context.Background(), tok)
			return ok && r.Active && !r.Local()
		})
		r, err := c.Introspect(context.Background(), tok)
		if err != nil || r.Local() || r.Username != "alice@acme" || !r.Roles().Has("admin") {
			t.Fatalf("Introspect after the confirmation = %+v, %v; want the server's answer", r, err)
		}
	}
	if n := as.introspections.Load(); n != 10 {
		t.Errorf("introspections = %d, want 10: one confirmation per token", n)
	}
	if n := as.jwksFetches.Load(); n != 1 {
		t.Errorf("JWKS fetches = %d, want 1", n)
	}
}

func TestLocalJWTRefusesForgeries(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	as.addKey(t, "ps", jwa.PS256())
	secret := []byte("a shared secret")
	oct, _ := jwk.Import(secret)
	_ = oct.Set(jwk.KeyIDKey, "oct")
	_ = oct.Set(jwk.AlgorithmKey, jwa.HS256())
	as.publish(oct)
	as.mu.Lock()
	pubDER := x509.MarshalPKCS1PublicKey(&as.keys["k1"].PublicKey)
	psKey := as.keys["ps"]
	noAlg, _ := jwk.Import(&psKey.PublicKey)
	as.mu.Unlock()
	_ = noAlg.Set(jwk.KeyIDKey, "noalg")
	as.publish(noAlg)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pubDER})
	now := clk.Now()
	with := func(k string, v any) map[string]any { m := as.claims(now); m[k] = v; return m }
	good := as.sign(t, "k1", jwa.RS256(), as.claims(now))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+as.issuer()+`","sub":"mallory","jti":"x","exp":9999999999,"aud":["`+project+`"]}`)) + "." + parts[2]
	c := localClient(t, as, clk)
	for _, tc := range []struct {
		name, token string
	}{
		{"alg none", unsigned(map[string]any{"alg": "none", "kid": "k1"}, as.claims(now))},
		{"alg none without kid", unsigned(map[string]any{"alg": "none"}, as.claims(now))},
		{"HS256 with the public key PEM as secret", signWith(t, jwa.HS256(), pubPEM, "k1", as.claims(now))},
		{"HS256 with the public key DER as secret", signWith(t, jwa.HS256(), pubDER, "k1", as.claims(now))},
		{"HS256 with a symmetric key the JWKS publishes", signWith(t, jwa.HS256(), secret, "oct", as.claims(now))},
		{"wrong iss", as.sign(t, "k1", jwa.RS256(), with("iss", "https://evil.example.com"))},
		{"expired", as.sign(t, "k1", jwa.RS256(), with("exp", now.Add(-time.Minute).Unix()))},
		{"not valid yet", as.sign(t, "k1", jwa.RS256(), with("nbf", now.Add(time.Minute).Unix()))},
		{"header alg PS256, key declares RS256", as.sign(t, "k1", jwa.PS256(), as.claims(now))},
		{"header alg RS256, key declares PS256", as.sign(t, "ps", jwa.RS256(), as.claims(now))},
		{"key without alg", signWith(t, jwa.PS256(), psKey, "noalg", as.claims(now))},
		{"payload changed", tampered},
		{"no kid", unsigned(map[string]any{"alg": "RS256"}, as.claims(now)) + "c2ln"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Introspect(context.Background(), tc.token)
			var je *introspect.JWTError
			if !errors.Is(err, introspect.ErrInactive) || !errors.As(err, &je) {
				t.Errorf("Introspect(%s) err = %v, want a *JWTError matching ErrInactive", tc.name, err)
			}
			if r, err := c.Introspect(context.Background(), tc.token); r != nil || !errors.Is(err, introspect.ErrInactive) {
				t.Errorf("Introspect(%s) again = %v, %v; want ErrInactive", tc.name, r, err)
			}
		})
	}
	if n := as.introspections.Load(); n != 0 {
		t.Errorf("introspections = %d, want 0: forgeries are refused locally", n)
	}
	if r, err := c.Introspect(context.Background(), good); err != nil || !r.Local() {
		t.Errorf("Introspect(good) = %v, %v; want a local decision", r, err)
	}
}

func TestUnknownKeyIDRefreshesOncePerInterval(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A stranger's key: the JWKS never has it. The first unknown kid
	// refreshes; the others, concurrent or later within the interval, do
	// not; the server decides them (and refuses them).
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			tok := signWith(t, jwa.RS256(), priv, fmt.Sprintf("stranger-%d", i), as.claims(clk.Now()))
			if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
				t.Errorf("Introspect(unknown kid) err = %v, want ErrInactive", err)
			}
		})
	}
	wg.Wait()
	if n := as.jwksFetches.Load(); n != 2 {
		t.Errorf("JWKS fetches = %d, want 2: the first and one refresh", n)
	}
	// A rotation within the interval: no refresh yet, so the new key's
	// token is introspected (and accepted), not refused.
	as.addKey(t, "k2", jwa.RS256())
	rotated := as.sign(t, "k2", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), rotated); err != nil || r.Local() {
		t.Errorf("Introspect(new kid within the interval) = %v, %v; want the server's answer", r, err)
	}
	clk.Advance(introspect.DefaultJWKSRefreshInterval)
	fresh := as.sign(t, "k2", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), fresh); err != nil || !r.Local() {
		t.Errorf("Introspect(new kid after the interval) = %v, %v; want a local decision", r, err)
	}
	if n := as.jwksFetches.Load(); n != 3 {
		t.Errorf("JWKS fetches = %d, want 3", n)
	}
}

func TestInactiveConfirmationRefusesTheTokenAndEndsItsWatchers(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	claims := as.claims(clk.Now())
	as.revoke(claims["jti"].(string)) // revoked before its first use here
	tok := as.sign(t, "k1", jwa.RS256(), claims)
	hold := make(chan struct{})
	as.setBlock(hold)
	r, err := c.Introspect(context.Background(), tok)
	if err != nil || !r.Local() {
		t.Fatalf("Introspect = %v, %v; want a provisional local decision", r, err)
	}
	invalidated, stop := c.Watch(tok, r)
	defer stop()
	close(hold)
	select {
	case <-invalidated:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher of the local decision was not told of the inactive confirmation")
	}
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Fatalf("Introspect after the confirmation err = %v, want ErrInactive", err)
	}
	// Once the negative entry is gone, the token is not decided locally
	// again: the server is asked, on the request path.
	clk.Advance(introspect.DefaultNegativeTTL + time.Second)
	before := as.introspections.Load()
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Fatalf("Introspect after the negative TTL err = %v, want ErrInactive", err)
	}
	if n := as.introspections.Load(); n != before+1 {
		t.Errorf("introspections = %d, want %d", n, before+1)
	}
}

func TestInvalidationsReachLocalDecisionsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		invalidate func(c *introspect.Client, tok string, claims map[string]any)
	}{
		{"Invalidate", func(c *introspect.Client, tok string, _ map[string]any) { c.Invalidate(tok) }},
		{"InvalidateSubject", func(c *introspect.Client, _ string, m map[string]any) { c.InvalidateSubject(m["sub"].(string)) }},
		{"InvalidateTokenID", func(c *introspect.Client, _ string, m map[string]any) { c.InvalidateTokenID(m["jti"].(string)) }},
		{"another replica's InvalidateSubjectAt", func(c *introspect.Client, _ string, m map[string]any) {
			c.InvalidateSubjectAt(m["sub"].(string), time.Now())
		}},
		{"Purge", func(c *introspect.Client, _ string, _ map[string]any) { c.Purge() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			as, clk := startJWTAS(t), newClock()
			c := localClient(t, as, clk)
			claims := as.claims(clk.Now())
			tok := as.sign(t, "k1", jwa.RS256(), claims)
			if r, err := c.Introspect(context.Background(), tok); err != nil || !r.Local() {
				t.Fatalf("Introspect = %v, %v; want a local decision", r, err)
			}
			eventually(t, "the confirmation", func() bool { r, ok := c.Cached(context.Background(), tok); return ok && !r.Local() })
			// The user is locked at the server, and the API told.
			as.revoke(claims["jti"].(string))
			tc.invalidate(c, tok, claims)
			if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
				t.Fatalf("Introspect after %s err = %v, want ErrInactive at once, not a new local decision", tc.name, err)
			}
			if n := as.introspections.Load(); n != 2 {
				t.Errorf("introspections = %d, want 2 (the confirmation, then the request's)", n)
			}
		})
	}
}

func TestFailedConfirmationSendsTheNextRequestToTheServer(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	as.setStatus(http.StatusServiceUnavailable)
	tok := as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), tok); err != nil || !r.Local() {
		t.Fatalf("Introspect = %v, %v; want a local decision", r, err)
	}
	eventually(t, "the failed confirmation", func() bool { _, ok := c.Cached(context.Background(), tok); return !ok })
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrUnavailable) {
		t.Fatalf("Introspect after a failed confirmation err = %v, want ErrUnavailable: no second local decision", err)
	}
	as.setStatus(0)
	if r, err := c.Introspect(context.Background(), tok); err != nil || r.Local() {
		t.Fatalf("Introspect with the server back = %v, %v; want its answer", r, err)
	}
}

func TestStaleIfErrorCoversOnlyTokensTheServerConfirmed(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk, introspect.WithStaleIfError(10*time.Minute))
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if _, err := c.Introspect(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the confirmation", func() bool { r, ok := c.Cached(context.Background(), good); return ok && !r.Local() })
	// A token revoked before its first use here, seen during an outage: its
	// first use is decided locally (one round trip), then the server must
	// answer; stale-if-error does not cover a token it never confirmed.
	m := as.claims(clk.Now())
	as.revoke(m["jti"].(string))
	revoked := as.sign(t, "k1", jwa.RS256(), m)
	as.setStatus(http.StatusServiceUnavailable)
	accepted := 0
	for i := range 10 {
		r, err := c.Introspect(context.Background(), revoked)
		switch {
		case err == nil && r.Active:
			accepted++
		case i > 0 && !errors.Is(err, introspect.ErrUnavailable):
			t.Fatalf("Introspect #%d of a never-confirmed token during the outage err = %v, want ErrUnavailable", i, err)
		}
		eventually(t, "the failed confirmation", func() bool { r, ok := c.Cached(context.Background(), revoked); return !ok || !r.Local() })
		clk.Advance(time.Minute)
	}
	if accepted > 1 {
		t.Errorf("a revoked token never confirmed was accepted %d/10 times during the outage, want at most its first use", accepted)
	}
	// The confirmed token is served stale within the window.
	if r, err := c.Introspect(context.Background(), good); err != nil || !r.Active || r.Local() {
		t.Fatalf("Introspect of a confirmed token during the outage = %v, %v; want the stale answer", r, err)
	}
}

func TestTokensThatAreNotAccessJWTsAreIntrospected(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	idToken := as.claims(clk.Now())
	idToken["nonce"] = "n"
	noJTI := as.claims(clk.Now())
	delete(noJTI, "jti")
	for name, tok := range map[string]string{
		"opaque":        "an-opaque-token",
		"ID token":      as.sign(t, "k1", jwa.RS256(), idToken),
		"no jti":        as.sign(t, "k1", jwa.RS256(), noJTI),
		"not JSON head": "bm90IGpzb24.e30.c2ln",
	} {
		before := as.introspections.Load()
		r, err := c.Introspect(context.Background(), tok)
		if r != nil && r.Local() {
			t.Errorf("Introspect(%s) was decided locally", name)
		}
		if as.introspections.Load() != before+1 {
			t.Errorf("Introspect(%s) = %v, %v without asking the server", name, r, err)
		}
	}
}

func TestLocalJWTConfiguration(t *testing.T) {
	t.Parallel()
	auth := clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"}
	for _, tc := range []struct {
		name string
		opts []introspect.Option
		want string
	}{
		{"no issuer", []introspect.Option{introspect.WithLocalJWT(introspect.LocalJWT{})}, "issuer"},
		{"without cache", []introspect.Option{introspect.WithLocalJWT(introspect.LocalJWT{Issuer: "https://a.example"}), introspect.WithoutCache()}, "WithLocalJWT"},
		{"plain http JWKS", []introspect.Option{introspect.WithLocalJWT(introspect.LocalJWT{Issuer: "https://a.example", JWKSURL: "http://a.example/keys"})}, "plain http"},
		{"plain http issuer, JWKS discovered over it", []introspect.Option{introspect.WithLocalJWT(introspect.LocalJWT{Issuer: "http://a.example"})}, "plain http"},
		{"negative leeway", []introspect.Option{introspect.WithLocalJWT(introspect.LocalJWT{Issuer: "https://a.example", Leeway: -1})}, "negative"},
	} {
		if _, err := introspect.New("https://a.example/introspect", auth, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	c, err := introspect.New("https://a.example/introspect", auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Errorf("FetchJWKS without WithLocalJWT = %v, want nil", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close without WithLocalJWT = %v", err)
	}
}

func TestJWKSURLDiscoveredAndCloseStopsTheCache(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c, err := introspect.New(as.issuer()+"/introspect", clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"},
		introspect.WithLocalJWT(introspect.LocalJWT{Issuer: as.issuer()}), introspect.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	// No discovery document yet: FetchJWKS fails, and JWTs are
	// introspected meanwhile.
	if err := c.FetchJWKS(context.Background()); err == nil {
		t.Error("FetchJWKS without a discovery document = nil, want an error")
	}
	tok := as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), tok); err != nil || r.Local() {
		t.Errorf("Introspect without keys = %v, %v; want the server's answer", r, err)
	}
	as.mu.Lock()
	as.discovery = true
	as.mu.Unlock()
	clk.Advance(introspect.DeferredBackoffMax)
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Fatalf("FetchJWKS with discovery = %v", err)
	}
	tok = as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), tok); err != nil || !r.Local() {
		t.Errorf("Introspect with discovered keys = %v, %v; want a local decision", r, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	tok = as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), tok); err != nil || r.Local() {
		t.Errorf("Introspect after Close = %v, %v; want the server's answer", r, err)
	}
}

// A confirmed token is introspected for the rest of its life: when the
// server's answer expires, the next request asks the server, it is never
// decided locally on its old claims again.
func TestConfirmedTokenIsNeverDecidedLocallyAgain(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk, introspect.WithMaxTTL(time.Minute))
	claims := as.claims(clk.Now())
	tok := as.sign(t, "k1", jwa.RS256(), claims)
	if r, err := c.Introspect(context.Background(), tok); err != nil || !r.Local() {
		t.Fatal(r, err)
	}
	eventually(t, "the confirmation", func() bool { r, ok := c.Cached(context.Background(), tok); return ok && !r.Local() })
	as.revoke(claims["jti"].(string))
	for i := range 3 {
		clk.Advance(time.Minute + time.Second)
		if r, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
			t.Fatalf("cycle %d: Introspect of a token revoked after its confirmation = %v (local %v), %v; want the server's inactive", i, r, r != nil && r.Local(), err)
		}
	}
}

// An invalidation is not forgotten after its record window: the token the
// server answered about is introspected (found in review 12).
func TestInvalidatedTokenIsNotDecidedLocallyAfterTheRecordWindow(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk, introspect.WithMaxTTL(time.Minute))
	claims := as.claims(clk.Now())
	tok := as.sign(t, "k1", jwa.RS256(), claims)
	if r, err := c.Introspect(context.Background(), tok); err != nil || !r.Local() {
		t.Fatal(r, err)
	}
	eventually(t, "the confirmation", func() bool { r, ok := c.Cached(context.Background(), tok); return ok && !r.Local() })
	as.revoke(claims["jti"].(string))
	c.InvalidateSubject("alice")
	clk.Advance(time.Minute + introspect.DefaultTimeout + time.Second)
	if r, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Fatalf("Introspect of an invalidated subject's token after the record window = %v (local %v), %v; want the server's inactive", r, r != nil && r.Local(), err)
	}
}

// Flooding the per-token records with one's own tokens does not re-open local
// decisions about a revoked token whose record was evicted: tokens issued
// before the newest evicted one are introspected (found in review 12).
func TestEvictedRecordsDoNotReopenLocalDecisions(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk, introspect.WithCacheSize(8), introspect.WithNegativeCacheSize(8))
	if err := c.FetchJWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	revoked := func() string {
		m := as.claims(clk.Now())
		as.revoke(m["jti"].(string))
		return as.sign(t, "k1", jwa.RS256(), m)
	}
	refused := func(tok string) bool {
		_, err := c.Introspect(context.Background(), tok)
		return errors.Is(err, introspect.ErrInactive)
	}
	victim := revoked()
	_, _ = c.Introspect(context.Background(), victim)
	eventually(t, "the victim refused", func() bool { return refused(victim) })
	clk.Advance(introspect.DefaultNegativeTTL + time.Second)
	for range 20 {
		tok := revoked()
		_, _ = c.Introspect(context.Background(), tok)
		eventually(t, "the flood's token refused", func() bool { return refused(tok) })
	}
	clk.Advance(introspect.DefaultNegativeTTL + time.Second)
	for i := range 5 {
		if r, err := c.Introspect(context.Background(), victim); !errors.Is(err, introspect.ErrInactive) {
			t.Fatalf("#%d: Introspect of the revoked victim after the flood = %v (local %v), %v; want the server's inactive", i, r, r != nil && r.Local(), err)
		}
	}
	// A token issued after the flood is decided locally again.
	clk.Advance(time.Second)
	fresh := as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	if r, err := c.Introspect(context.Background(), fresh); err != nil || !r.Local() {
		t.Fatalf("Introspect of a token issued after the flood = %v, %v; want a local decision", r, err)
	}
	// A token without iat is never decided locally.
	m := as.claims(clk.Now())
	delete(m, "iat")
	noIat := as.sign(t, "k1", jwa.RS256(), m)
	if r, err := c.Introspect(context.Background(), noIat); err != nil || r.Local() {
		t.Fatalf("Introspect of a token without iat = %v, %v; want the server's answer", r, err)
	}
}

// While the JWKS cannot be fetched, a new JWT is introspected at once, without
// waiting for keys after the first fetch attempt failed (found in review 12).
func TestJWKSDownDoesNotDelayIntrospection(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	var down atomic.Bool
	down.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" && down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		as.serve(w, r)
	}))
	t.Cleanup(front.Close)
	c, err := introspect.New(front.URL+"/introspect", clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"},
		introspect.WithLocalJWT(introspect.LocalJWT{Issuer: as.issuer(), JWKSURL: front.URL + "/jwks"}),
		introspect.WithClock(clk.Now), introspect.WithRetries(0, 0), introspect.WithCircuitBreaker(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.FetchJWKS(context.Background()); !errors.Is(err, introspect.ErrUnavailable) {
		t.Fatalf("FetchJWKS with the JWKS down = %v, want ErrUnavailable", err)
	}
	for i := range 3 {
		// Less than the attempt timeout: a request that waits for keys that
		// will not come runs out of time before it introspects.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := c.Introspect(ctx, as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now())))
		cancel()
		if err != nil || r.Local() {
			t.Fatalf("#%d: Introspect with the JWKS down = %v, %v; want the server's answer at once", i, r, err)
		}
		clk.Advance(2 * time.Minute)
	}
	// The JWKS back: a forced refresh in the background (one per interval)
	// picks it up, and new JWTs are decided locally again.
	down.Store(false)
	eventually(t, "a local decision with the JWKS back", func() bool {
		clk.Advance(2 * time.Minute)
		r, err := c.Introspect(context.Background(), as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now())))
		return err == nil && r.Local()
	})
}

package devserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
)

type world struct {
	srv     *devserver.Server
	project devserver.Project
	api     devserver.App
	admin   devserver.ServiceUser
	reader  devserver.ServiceUser
	client  *introspect.Client
}

func newWorld(t *testing.T, opts ...devserver.Option) *world {
	t.Helper()
	srv, err := devserver.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := &world{srv: srv, project: srv.CreateProject("Shop API")}
	if w.api, err = srv.CreateAPIApp(w.project.ID); err != nil {
		t.Fatal(err)
	}
	if w.admin, err = srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"admin", "reader"}}); err != nil {
		t.Fatal(err)
	}
	if w.reader, err = srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"reader"}}); err != nil {
		t.Fatal(err)
	}
	key, err := clientauth.ParseKey(w.api.KeyJSON)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := key.PrivateKeyJWT(srv.Issuer())
	if w.client, err = introspect.New(srv.Issuer()+devserver.IntrospectPath, auth, introspect.WithoutCache(), introspect.WithRetries(0, 0)); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) bearer(t *testing.T, u devserver.ServiceUser, projects ...string) *clientauth.JWTBearer {
	t.Helper()
	key, err := clientauth.ParseKey(u.KeyJSON)
	if err != nil {
		t.Fatal(err)
	}
	return &clientauth.JWTBearer{Key: key, Issuer: w.srv.Issuer(), ProjectIDs: projects}
}

func TestDiscoveryUsesZITADELPaths(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	doc, err := introspect.Discover(context.Background(), w.srv.Issuer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	iss := w.srv.Issuer()
	if doc.TokenEndpoint != iss+"/oauth/v2/token" || doc.IntrospectionEndpoint != iss+"/oauth/v2/introspect" ||
		doc.RevocationEndpoint != iss+"/oauth/v2/revoke" || doc.JwksURI != iss+"/oauth/v2/keys" {
		t.Errorf("endpoints = %s %s %s %s", doc.TokenEndpoint, doc.IntrospectionEndpoint, doc.RevocationEndpoint, doc.JwksURI)
	}
	if !strings.HasPrefix(iss, "http://127.0.0.1:") {
		t.Errorf("issuer %q, want loopback", iss)
	}
}

func TestJWTBearerGrantWithAudienceScope(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok, err := w.bearer(t, w.admin, w.project.ID).Token(context.Background())
	if err != nil {
		t.Fatalf("Token() err = %v", err)
	}
	if tok.Expiry.Before(time.Now().Add(11*time.Hour)) || tok.TokenType != "Bearer" {
		t.Errorf("token expiry %v type %q, want ~12h Bearer", tok.Expiry, tok.TokenType)
	}
	r, err := w.client.Introspect(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatalf("Introspect() err = %v", err)
	}
	if r.Subject != w.admin.UserID || r.Username != "admin-bot" || !r.HasAudience(w.project.ID) || r.OrgID != w.srv.Org().ID {
		t.Errorf("Introspect() = sub %q username %q aud %v org %q", r.Subject, r.Username, r.Audience(), r.OrgID)
	}
	if !r.HasScope(clientauth.ProjectAudienceScope(w.project.ID)) || r.Issuer != w.srv.Issuer() || r.JWTID == "" {
		t.Errorf("scope %v iss %q jti %q", r.Scopes(), r.Issuer, r.JWTID)
	}
	roles := r.RolesFor(w.project.ID)
	if !roles.HasInOrg("admin", w.srv.Org().ID) || !roles.Has("reader") || !r.Roles().Has("admin") {
		t.Errorf("roles = %v / generic %v, want admin and reader", roles, r.Roles())
	}
}

func TestWithoutAudienceScopeTheAPICannotUseTheToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok, err := w.bearer(t, w.admin).Token(context.Background()) // no project ID
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.Introspect(context.Background(), tok.AccessToken); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("Introspect(token without the project audience scope) err = %v, want ErrInactive", err)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, err := w.bearer(t, w.admin, "999999").Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_scope" || !strings.Contains(re.ErrorDescription, "999999") {
		t.Errorf("unknown project: err = %v, want invalid_scope naming the project", err)
	}
	other, _ := w.srv.CreateServiceUser("ghost")
	b := w.bearer(t, other, w.project.ID)
	if err := w.srv.LockUser(other.UserID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Token(context.Background()); !errors.As(err, &re) {
		t.Errorf("locked user: err = %v, want a RetrieveError", err)
	}
	appKey, _ := clientauth.ParseKey(w.api.KeyJSON)
	if _, err := (&clientauth.JWTBearer{Key: appKey, Issuer: w.srv.Issuer()}).Token(context.Background()); err == nil || !strings.Contains(err.Error(), "service user key") {
		t.Errorf("application key for the grant: err = %v, want a clear refusal", err)
	}
}

func TestAssertionChecks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	key, _ := clientauth.ParseKey(w.admin.KeyJSON)
	post := func(assertion string) int {
		form := url.Values{"grant_type": {clientauth.GrantTypeJWTBearer}, "assertion": {assertion}, "scope": {"openid"}}
		resp, err := http.PostForm(w.srv.Issuer()+devserver.TokenPath, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	old := time.Now().Add(-2 * time.Hour)
	stale, _ := clientauth.NewPrivateKeyJWT(key.Signer, key.KeyID, key.ClientID, w.srv.Issuer(), clientauth.WithClock(func() time.Time { return old }), clientauth.WithLifetime(time.Hour))
	wrongAud, _ := clientauth.NewPrivateKeyJWT(key.Signer, key.KeyID, key.ClientID, "https://elsewhere")
	wrongKID, _ := clientauth.NewPrivateKeyJWT(key.Signer, "nope", key.ClientID, w.srv.Issuer())
	good, _ := clientauth.NewPrivateKeyJWT(key.Signer, key.KeyID, key.ClientID, w.srv.Issuer())
	for name, pk := range map[string]*clientauth.PrivateKeyJWT{"stale iat": stale, "wrong aud": wrongAud, "unknown kid": wrongKID} {
		a, _ := pk.Assertion()
		if code := post(a); code == 200 {
			t.Errorf("%s: token endpoint answered 200", name)
		}
	}
	a, _ := good.Assertion()
	if code := post(a); code != 200 {
		t.Errorf("good assertion: status %d", code)
	}
}

func TestClientCredentialsAndSecretApp(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	secretApp, err := w.srv.CreateAPIAppWithSecret(w.project.ID)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"openid " + clientauth.ProjectAudienceScope(w.project.ID)}}
	req, _ := http.NewRequest("POST", w.srv.Issuer()+devserver.TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.reader.Username, w.reader.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("client_credentials: %d %s", resp.StatusCode, body)
	}
	c, _ := introspect.New(w.srv.Issuer()+devserver.IntrospectPath, clientauth.ClientSecretBasic{ClientID: secretApp.ClientID, Secret: secretApp.Secret})
	r, err := c.Introspect(context.Background(), tr.AccessToken)
	if err != nil || r.Subject != w.reader.UserID {
		t.Errorf("introspect with client_secret_basic = %+v, %v", r, err)
	}
	bad, _ := introspect.New(w.srv.Issuer()+devserver.IntrospectPath, clientauth.ClientSecretBasic{ClientID: secretApp.ClientID, Secret: "wrong"})
	if _, err := bad.Introspect(context.Background(), tr.AccessToken); !errors.Is(err, introspect.ErrClientAuth) {
		t.Errorf("wrong secret: err = %v, want ErrClientAuth", err)
	}
}

func TestRevocationEndpoint(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok, err := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	key, _ := clientauth.ParseKey(w.api.KeyJSON)
	auth, _ := key.PrivateKeyJWT(w.srv.Issuer())
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	_ = auth.AuthenticateClient(form, nil)
	resp, err := http.PostForm(w.srv.Issuer()+devserver.RevokePath, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	if _, err := w.client.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("after revocation err = %v, want ErrInactive", err)
	}
}

func TestMintTokenKinds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pat, _ := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{Audience: []string{w.api.ClientID}})
	if r, err := w.client.Introspect(context.Background(), pat); err != nil || !slices.Equal(r.Audience(), []string{w.api.ClientID}) {
		t.Errorf("client-ID-only token: %v, %v", r, err)
	}
	short, _ := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}, Lifetime: time.Second})
	time.Sleep(1100 * time.Millisecond)
	if _, err := w.client.Introspect(context.Background(), short); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("expired token: err = %v, want ErrInactive", err)
	}
	jwtTok, err := w.srv.MintToken(w.admin.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}, JWT: true})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseInsecure([]byte(jwtTok))
	if err != nil {
		t.Fatalf("JWT access token does not parse: %v", err)
	}
	if aud, _ := parsed.Audience(); !slices.Contains(aud, w.project.ID) {
		t.Errorf("JWT aud = %v, want the project", aud)
	}
	if r, err := w.client.Introspect(context.Background(), jwtTok); err != nil || !r.RolesFor(w.project.ID).Has("admin") {
		t.Errorf("introspect JWT access token: %v, %v", r, err)
	}
	if err := w.srv.Revoke(jwtTok); err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.Introspect(context.Background(), jwtTok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("revoked JWT: err = %v, want ErrInactive", err)
	}
}

func TestJWTAccessTokensFromTheGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t, devserver.WithJWTAccessTokens())
	tok, err := w.bearer(t, w.admin, w.project.ID).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("access token %q is not a JWT", tok.AccessToken)
	}
	parsed, _ := jwt.ParseInsecure([]byte(tok.AccessToken))
	if aud, _ := parsed.Audience(); !slices.Equal(aud, []string{w.project.ID}) {
		t.Errorf("JWT aud = %v, want [%s]", aud, w.project.ID)
	}
	if _, err := w.client.Introspect(context.Background(), tok.AccessToken); err != nil {
		t.Errorf("introspect JWT from the grant: %v", err)
	}
}

func TestLockedUserAndRoleChanges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok, _ := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}})
	if err := w.srv.SetRoles(w.reader.UserID, w.project.ID, "writer"); err != nil {
		t.Fatal(err)
	}
	if r, err := w.client.Introspect(context.Background(), tok); err != nil || !r.Roles().Has("writer") || r.Roles().Has("reader") {
		t.Errorf("after SetRoles: %v, %v", r, err)
	}
	_ = w.srv.LockUser(w.reader.UserID, true)
	if _, err := w.client.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("locked user's token: err = %v, want ErrInactive", err)
	}
}

func TestIntrospectionDelayAndFaults(t *testing.T) {
	t.Parallel()
	w := newWorld(t, devserver.WithIntrospectionDelay(100*time.Millisecond))
	tok, _ := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}})
	start := time.Now()
	if _, err := w.client.Introspect(context.Background(), tok); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("delayed introspection: %v after %v", err, time.Since(start))
	}
	w.srv.SetIntrospectionDelay(0)
	w.srv.SetIntrospectionFault(func(rw http.ResponseWriter, r *http.Request) bool {
		rw.Header().Set("Retry-After", "3")
		rw.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	var ie *introspect.Error
	if _, err := w.client.Introspect(context.Background(), tok); !errors.As(err, &ie) || ie.RetryAfter != 3*time.Second {
		t.Errorf("fault: err = %v, want a 503 with Retry-After 3", err)
	}
	if n := w.srv.IntrospectionCalls(); n != 2 {
		t.Errorf("IntrospectionCalls() = %d, want 2", n)
	}
}

func TestTokenSourceCachesAndClientSendsBearer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.bearer(t, w.admin, w.project.ID)
	ts := b.TokenSource(context.Background())
	t1, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := ts.Token()
	if t1.AccessToken != t2.AccessToken {
		t.Errorf("TokenSource fetched a new token before expiry")
	}
	var got string
	hc := b.Client(context.Background())
	// The transport runs against an in-memory handler: no network needed.
	hc.Transport.(*oauth2.Transport).Base = &captureRT{next: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
	})}
	req, _ := http.NewRequest("GET", "http://api.invalid/api/me", nil)
	if _, err := hc.Do(req); err != nil {
		t.Fatal(err)
	}
	tok, ok := strings.CutPrefix(got, "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q, want a bearer token", got)
	}
	if _, err := w.client.Introspect(context.Background(), tok); err != nil {
		t.Errorf("the client's bearer token is not active for the API: %v", err)
	}
}

type captureRT struct{ next http.Handler }

func (c *captureRT) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &recorder{h: http.Header{}}
	c.next.ServeHTTP(rec, r)
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: rec.h, Request: r}, nil
}

type recorder struct{ h http.Header }

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *recorder) WriteHeader(int)             {}

// countingTransport counts requests by path.
type countingTransport struct {
	mu    sync.Mutex
	paths map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func TestJWTBearerDiscoversOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ct := &countingTransport{paths: map[string]int{}}
	b := w.bearer(t, w.admin, w.project.ID)
	b.HTTPClient = &http.Client{Transport: ct}
	for range 3 {
		if _, err := b.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := ct.paths["/.well-known/openid-configuration"]; n != 1 {
		t.Errorf("discovery ran %d times for 3 tokens, want 1", n)
	}
	if n := ct.paths[devserver.TokenPath]; n != 3 {
		t.Errorf("token endpoint called %d times, want 3", n)
	}
}

func TestTokenSourceRefreshesAMinuteBeforeExpiry(t *testing.T) {
	t.Parallel()
	// expires_in is whole seconds, rounded down: 63 s arrives as 62, two
	// seconds more than the minute before expiry at which a token is replaced.
	w := newWorld(t, devserver.WithTokenLifetime(63*time.Second))
	ts := w.bearer(t, w.admin, w.project.ID).TokenSource(context.Background())
	first, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := ts.Token(); again.AccessToken != first.AccessToken {
		t.Errorf("a token with 62 s left was replaced; want it reused until 60 s are left")
	}
	time.Sleep(2100 * time.Millisecond) // now under a minute left: DefaultExpiryDelta
	if next, _ := ts.Token(); next.AccessToken == first.AccessToken {
		t.Errorf("a token with under a minute left was reused; want a new one")
	}
}

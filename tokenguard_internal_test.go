package tokenguard_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/internal/testcert"
	"github.com/tokenguard/tokenguard/middleware"
)

// publicWorld is a development server that names itself by a public issuer
// while it listens on loopback, as ZITADEL behind an ingress, with an API
// application, a user and a token for the project.
type publicWorld struct {
	srv     *devserver.Server
	project string
	key     *clientauth.Key
	user    devserver.ServiceUser
	token   string

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct{ path, host, instance string }

func newPublicWorld(t *testing.T, issuer string, opts ...devserver.Option) *publicWorld {
	t.Helper()
	w := &publicWorld{}
	opts = append(opts, devserver.WithIssuer(issuer), devserver.WithRequestObserver(func(r *http.Request) {
		w.mu.Lock()
		w.seen = append(w.seen, seenRequest{r.URL.Path, r.Host, r.Header.Get(tokenguard.InstanceHostHeader)})
		w.mu.Unlock()
	}))
	srv, err := devserver.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w.srv, w.project = srv, srv.CreateProject("API").ID
	app, err := srv.CreateAPIApp(w.project)
	if err != nil {
		t.Fatal(err)
	}
	if w.key, err = clientauth.ParseKey(app.KeyJSON); err != nil {
		t.Fatal(err)
	}
	if w.user, err = srv.CreateServiceUser("worker", devserver.Grant{ProjectID: w.project, Roles: []string{"reader"}}); err != nil {
		t.Fatal(err)
	}
	if w.token, err = srv.MintToken(w.user.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project}}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *publicWorld) requests() []seenRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]seenRequest(nil), w.seen...)
}

// authenticate sends the world's token through the guard as a request would.
func (w *publicWorld) authenticate(t *testing.T, g *tokenguard.Guard) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "/api", nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	ctx, err := g.Authenticate(req)
	claims, _ := middleware.ClaimsFromContext(ctx)
	if err != nil || claims == nil {
		t.Fatalf("Authenticate() err = %v, want the token accepted", err)
	}
	if claims.Subject != w.user.UserID || !claims.Roles.Has("reader") {
		t.Errorf("Authenticate() = sub %q roles %v, want %s with reader", claims.Subject, claims.Roles.Names(), w.user.UserID)
	}
}

// TestInternalURLWithPublicIssuer is the Kubernetes setup end to end: the
// tokens and discovery name http://zitadel.example:8080, the API reaches
// the server at its loopback address, and the server, like ZITADEL, only
// answers requests that name the public host.
func TestInternalURLWithPublicIssuer(t *testing.T) {
	t.Parallel()
	const issuer, host = "http://zitadel.example:8080", "zitadel.example:8080"
	w := newPublicWorld(t, issuer)
	ctx := context.Background()

	// Why the option exists: the plain internal URL as the issuer fails
	// with ZITADEL's "instance not found".
	_, err := tokenguard.New(ctx, tokenguard.Config{Issuer: w.srv.URL(), Key: w.key, ProjectID: w.project}, discardLogs())
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("New(Issuer: the internal URL) err = %v, want the server's 404 (instance not found)", err)
	}

	hc := &http.Client{}
	g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: w.key, ProjectID: w.project,
		InternalURL: w.srv.URL(), InsecureAllowHTTP: true, HTTPClient: hc}, discardLogs())
	if err != nil {
		t.Fatalf("New(InternalURL: %s) err = %v", w.srv.URL(), err)
	}
	if hc.Transport != nil {
		t.Errorf("New changed the caller's HTTPClient: Transport = %T", hc.Transport)
	}
	if got := g.Client().Endpoint(); got != issuer+devserver.IntrospectPath {
		t.Errorf("Endpoint() = %q, want the discovered public endpoint", got)
	}
	w.authenticate(t, g)

	var paths []string
	for _, r := range w.requests()[1:] { // [0] is the failed attempt above
		paths = append(paths, r.path)
		if r.host != host || r.instance != host {
			t.Errorf("%s reached the server with Host %q and %s %q, want %q for both", r.path, r.host, tokenguard.InstanceHostHeader, r.instance, host)
		}
	}
	if strings.Join(paths, " ") != "/.well-known/openid-configuration "+devserver.IntrospectPath {
		t.Errorf("requests = %q, want discovery, then one introspection", paths)
	}
}

// TestInternalURLTLS: an https internal address is verified for the
// issuer's name (the certificate ZITADEL serves), not for the address it is
// reached at, and not skipped.
func TestInternalURLTLS(t *testing.T) {
	t.Parallel()
	const issuer = "https://auth.example.com"
	ctx := context.Background()
	cert, pool := testcert.New("auth.example.com")
	w := newPublicWorld(t, issuer, devserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if !strings.HasPrefix(w.srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL() = %q", w.srv.URL())
	}
	trusting := func() *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	hc := trusting()
	g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: w.key, ProjectID: w.project, InternalURL: w.srv.URL(), HTTPClient: hc}, discardLogs())
	if err != nil {
		t.Fatalf("New(https InternalURL) err = %v", err)
	}
	w.authenticate(t, g)
	if tr := hc.Transport.(*http.Transport); tr.TLSClientConfig.ServerName != "" {
		t.Errorf("New changed the caller's transport: ServerName = %q", tr.TLSClientConfig.ServerName)
	}
	for _, r := range w.requests() {
		if r.host != "auth.example.com" || r.instance != "auth.example.com" {
			t.Errorf("%s: Host %q, instance header %q, want auth.example.com", r.path, r.host, r.instance)
		}
	}

	// The attacker's move: a server at the internal address with a
	// certificate for another name. Verification stays on, so New fails.
	otherCert, otherPool := testcert.New("other.example.com")
	other := newPublicWorld(t, issuer, devserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{otherCert}}))
	otherClient := func() *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: otherPool}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	_, err = tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: other.key, ProjectID: other.project, InternalURL: other.srv.URL(), HTTPClient: otherClient()}, discardLogs())
	if err == nil || !strings.Contains(err.Error(), "certificate is valid for other.example.com, not auth.example.com") {
		t.Errorf("New against a certificate for another name err = %v, want a verification error", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("%d requests reached the server whose certificate failed verification", n)
	}
	// Naming the certificate's name explicitly works.
	g, err = tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: other.key, ProjectID: other.project, InternalURL: other.srv.URL(),
		InternalTLSServerName: "other.example.com", HTTPClient: otherClient()}, discardLogs())
	if err != nil {
		t.Fatalf("New(InternalTLSServerName: other.example.com) err = %v", err)
	}
	other.authenticate(t, g)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestInternalURLConfigErrors: mistakes are refused at New, before any
// request, with a message that says what to change.
func TestInternalURLConfigErrors(t *testing.T) {
	t.Parallel()
	key := newPublicWorld(t, "https://auth.example.com").key
	var sent atomic.Int32
	counting := &http.Client{Transport: roundTripperFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, http.ErrNotSupported
	})}
	tests := []struct {
		name   string
		cfg    tokenguard.Config
		wantIn string
	}{
		{"plain http beyond loopback", tokenguard.Config{InternalURL: "http://zitadel.zitadel.svc.cluster.local:8080"}, "uses plain http on a host that is not loopback"},
		{"a path", tokenguard.Config{InternalURL: "https://zitadel.svc/zitadel"}, "no path"},
		{"a query", tokenguard.Config{InternalURL: "https://zitadel.svc?x=1"}, "no path, query"},
		{"no scheme", tokenguard.Config{InternalURL: "zitadel.svc:8080"}, "absolute http or https URL"},
		{"user info", tokenguard.Config{InternalURL: "https://u:p@zitadel.svc"}, "absolute http or https URL"},
		{"server name without internal URL", tokenguard.Config{InternalTLSServerName: "auth.example.com"}, "without Config.InternalURL"},
		{"server name with plain http", tokenguard.Config{InternalURL: "http://127.0.0.1:1", InternalTLSServerName: "auth.example.com"}, "is not https"},
		{"https through a transport that cannot set the server name", tokenguard.Config{InternalURL: "https://zitadel.svc", HTTPClient: counting}, "*http.Transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Issuer, cfg.Key, cfg.ProjectID = "https://auth.example.com", key, "1"
			if cfg.HTTPClient == nil {
				cfg.HTTPClient = counting
			}
			_, err := tokenguard.New(context.Background(), cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "tokenguard: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("New(%+v) err = %v, want it to mention %q", tt.cfg, err, tt.wantIn)
			}
		})
	}
	t.Cleanup(func() {
		if n := sent.Load(); n != 0 {
			t.Errorf("%d requests were sent for refused configurations", n)
		}
	})
}

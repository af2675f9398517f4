package tokenguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// A guard started while the authorization server is down answers 503 with
// Retry-After and reports not ready; once the server comes up, it serves
// and reports ready, without a restart.
func TestGuardStartsWhileServerIsDown(t *testing.T) {
	t.Parallel()
	// The issuer's address, where nothing listens yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	issuer := "http://" + addr
	srv, err := devserver.Start(devserver.WithIssuer(issuer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	project := srv.CreateProject("API").ID
	app, _ := srv.CreateAPIApp(project)
	user, _ := srv.CreateServiceUser("worker", devserver.Grant{ProjectID: project})
	token, err := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := clientauth.ParseKey(app.KeyJSON)

	// Without DiscoverInBackground, New fails as before.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: key, ProjectID: project}); err == nil {
		t.Fatal("New with the server down and no DiscoverInBackground: err = nil")
	}
	// Local mistakes still fail fast with it.
	if _, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, KeyFile: "/nonexistent/key.json", ProjectID: project, DiscoverInBackground: true}); err == nil {
		t.Fatal("New with a missing key file and DiscoverInBackground: err = nil")
	}

	g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: issuer, Key: key, ProjectID: project, DiscoverInBackground: true}, middleware.WithLogger(discard()))
	if err != nil {
		t.Fatalf("New with the server down and DiscoverInBackground: %v", err)
	}
	api := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	call := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec
	}
	probe := func() int {
		rec := httptest.NewRecorder()
		g.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
		return rec.Code
	}
	if rec := call(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("request while down: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if err := g.Ready(ctx); !errors.Is(err, introspect.ErrNotReady) {
		t.Errorf("Ready() while down = %v, want ErrNotReady", err)
	}
	if code := probe(); code != http.StatusServiceUnavailable {
		t.Errorf("probe while down: %d, want 503", code)
	}

	// The server comes up at the issuer's address.
	target, _ := url.Parse(srv.URL())
	up, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the issuer's port was taken meanwhile: %v", err)
	}
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = proxy.Serve(up) }()
	t.Cleanup(func() { proxy.Close() })

	ready := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return g.Ready(ctx)
	}
	deadline := time.Now().Add(40 * time.Second) // past the longest backoff
	for err := ready(); err != nil; err = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 40 s after the server came up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rec := call(); rec.Code != http.StatusOK {
		t.Errorf("request once ready: %d %s, want 200", rec.Code, rec.Body)
	}
	if code := probe(); code != http.StatusOK {
		t.Errorf("probe once ready: %d, want 200", code)
	}
}

package tokenguard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// TestEndpointMustSatisfyTheIssuerRules: the introspection endpoint carries
// tokens and credentials, so it gets the issuer's rules (https, except on
// loopback, unless InsecureAllowHTTP), whether configured or discovered.
func TestEndpointMustSatisfyTheIssuerRules(t *testing.T) {
	t.Parallel()
	// A discovery document on loopback that names a plain-http endpoint
	// elsewhere. Nothing listens there: the endpoint must be refused before
	// any request.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"issuer":%q,"introspection_endpoint":"http://zitadel.example.test/oauth/v2/introspect"}`, srv.URL)
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name     string
		issuer   string
		endpoint string
		allow    bool
		wantErr  bool
	}{
		{"configured http endpoint elsewhere, https issuer", "https://zitadel.example.test", "http://zitadel.example.test/oauth/v2/introspect", false, true},
		{"configured http endpoint, allowed", "https://zitadel.example.test", "http://zitadel.example.test/oauth/v2/introspect", true, false},
		{"configured https endpoint", "https://zitadel.example.test", "https://zitadel.example.test/oauth/v2/introspect", false, false},
		{"configured http endpoint on loopback", "https://zitadel.example.test", "http://127.0.0.1:8080/oauth/v2/introspect", false, false},
		{"discovered http endpoint elsewhere", srv.URL, "", false, true},
		{"discovered http endpoint, allowed", srv.URL, "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: tt.issuer, IntrospectionEndpoint: tt.endpoint,
				ProjectID: project, ClientID: "api", ClientSecret: "s3cret", InsecureAllowHTTP: tt.allow})
			if (err != nil) != tt.wantErr || (err != nil && !strings.Contains(err.Error(), "plain http")) {
				t.Errorf("New() err = %v, want a plain-http refusal: %v", err, tt.wantErr)
			}
		})
	}
}

// TestTokenNeverFollowsARedirect: an authorization server that answers 307
// to another listener must not get the token, or this API's client
// assertion, sent there; the request fails closed with 503. The caller's own
// HTTP client, told to follow every redirect, changes nothing.
func TestTokenNeverFollowsARedirect(t *testing.T) {
	t.Parallel()
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("own client %v", own), func(t *testing.T) {
			t.Parallel()
			var received atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				received.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"active":true,"aud":"` + project + `"}`))
			}))
			t.Cleanup(other.Close)
			as := fakeas.Start()
			t.Cleanup(as.Close)
			keyJSON, _ := as.NewApp(project)
			cfg := tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project,
				IntrospectOptions: []introspect.Option{introspect.WithRetries(0, 0)}}
			if own {
				cfg.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
			}
			guard, err := tokenguard.New(context.Background(), cfg, discardLogs())
			if err != nil {
				t.Fatal(err)
			}
			as.SetFault(func(w http.ResponseWriter) bool {
				w.Header().Set("Location", other.URL+"/introspect")
				w.WriteHeader(http.StatusTemporaryRedirect)
				return true
			})
			tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
			if rec := serve(guard.Wrap(ok), tok); rec.Code != http.StatusServiceUnavailable {
				t.Errorf("AS answers 307: %d, want 503", rec.Code)
			}
			_, err = guard.Client().Introspect(context.Background(), tok)
			var re *introspect.RedirectError
			if !errors.As(err, &re) {
				t.Errorf("Introspect() err = %v, want a RedirectError", err)
			}
			if n := received.Load(); n != 0 {
				t.Errorf("the redirect's target received %d requests, want 0", n)
			}
		})
	}
}

package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

func TestDiscover(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	doc, err := introspect.Discover(context.Background(), as.Issuer, nil)
	if err != nil {
		t.Fatalf("Discover() err = %v", err)
	}
	if doc.IntrospectionEndpoint != as.Issuer+fakeas.IntrospectPath || doc.Issuer != as.Issuer {
		t.Errorf("Discover() = issuer %q endpoint %q", doc.Issuer, doc.IntrospectionEndpoint)
	}
	if _, err := introspect.Discover(context.Background(), as.Issuer+"/", nil); err == nil || !strings.Contains(err.Error(), "trailing slash") {
		t.Errorf("Discover(issuer + /) err = %v, want an exact-issuer mismatch that mentions the trailing slash", err)
	}
}

func TestDiscoverFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		body        string
		status      int
		wantUnavail bool
		wantIn      string
	}{
		{"404", `{}`, 404, false, "is \""},
		{"503", ``, 503, true, "unavailable"},
		{"not JSON", `<html>`, 200, true, "not a discovery document"},
		{"no introspection endpoint", `{"issuer":"ISSUER"}`, 200, false, "no introspection_endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var issuer string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(strings.ReplaceAll(tt.body, "ISSUER", issuer)))
			}))
			t.Cleanup(srv.Close)
			issuer = srv.URL
			_, err := introspect.Discover(context.Background(), issuer, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || errors.Is(err, introspect.ErrUnavailable) != tt.wantUnavail {
				t.Errorf("Discover() err = %v, want %q in it and Is(ErrUnavailable) = %v", err, tt.wantIn, tt.wantUnavail)
			}
		})
	}
}

// TestDiscoverDoesNotFollowRedirects: a discovery document served after a
// redirect to another host would name an introspection endpoint of that
// host's choosing.
func TestDiscoverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			var other *httptest.Server
			other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"issuer":%q,"introspection_endpoint":%q}`, other.URL, other.URL+"/introspect")
			}))
			t.Cleanup(other.Close)
			srv := httptest.NewServer(redirector(code, other.URL+oidc.DiscoveryEndpoint))
			t.Cleanup(srv.Close)
			hc := &http.Client{}
			doc, err := introspect.Discover(context.Background(), srv.URL, hc)
			var re *introspect.RedirectError
			if !errors.Is(err, introspect.ErrUnavailable) || !errors.As(err, &re) || re.StatusCode != code {
				t.Errorf("Discover() = %v, %v; want a RedirectError for %d matching ErrUnavailable", doc, err, code)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("the redirect's target received %d requests, want 0", n)
			}
			if hc.CheckRedirect != nil {
				t.Error("Discover changed the caller's http.Client")
			}
		})
	}
}

package tokenguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

func checkNames(results []tokenguard.CheckResult) string {
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
	}
	return strings.Join(names, " ")
}

func result(t *testing.T, results []tokenguard.CheckResult, name string) tokenguard.CheckResult {
	t.Helper()
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s check in %v", name, results)
	return tokenguard.CheckResult{}
}

// TestCheck runs the self-check against the development server: all good,
// then each mistake users make, with the line that names it.
func TestCheck(t *testing.T) {
	t.Parallel()
	w := newPublicWorld(t, "http://zitadel.example:8080")
	good := tokenguard.Config{Issuer: "http://zitadel.example:8080", InternalURL: w.srv.URL(), InsecureAllowHTTP: true, Key: w.key, ProjectID: w.project}
	ctx := context.Background()

	results := tokenguard.Check(ctx, good, w.token)
	if got := checkNames(results); got != "config key issuer client-auth clock token" {
		t.Fatalf("Check() names = %q", got)
	}
	for _, r := range results {
		if !r.OK() || !strings.HasPrefix(r.String(), r.Name+": ok") {
			t.Errorf("Check(good config) %s", r)
		}
	}
	if r := result(t, results, "token"); !strings.Contains(r.Detail, "subject "+w.user.UserID) || !strings.Contains(r.Detail, "roles reader") {
		t.Errorf("token check = %s", r)
	}
	if got := checkNames(tokenguard.Check(ctx, good, "")); got != "config key issuer client-auth clock" {
		t.Errorf("Check() without a token: names %q, want no token check", got)
	}

	// A token without the project audience scope: refused, and the line
	// names the scope to request.
	noAud, err := w.srv.MintToken(w.user.UserID, devserver.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := result(t, tokenguard.Check(ctx, good, noAud), "token")
	var me *middleware.Error
	if !errors.As(r.Err, &me) || me.StatusCode != http.StatusUnauthorized || !errors.Is(r.Err, middleware.ErrInactive) ||
		!strings.Contains(r.String(), "scope "+clientauth.ProjectAudienceScope(w.project)) {
		t.Errorf("token without the audience scope: %s (%v)", r, r.Err)
	}

	// Another server's key: the server refuses our client authentication.
	other := newPublicWorld(t, "http://zitadel.example:8080")
	bad := good
	bad.Key = other.key
	results = tokenguard.Check(ctx, bad, w.token)
	if r := result(t, results, "client-auth"); !errors.Is(r.Err, introspect.ErrClientAuth) || !strings.Contains(r.String(), "create a new key") {
		t.Errorf("foreign key: %s", r)
	}
	if r := result(t, results, "token"); !errors.Is(r.Err, tokenguard.ErrCheckSkipped) {
		t.Errorf("token check after a failed client-auth = %s, want skipped", r)
	}

	// Unreachable: the network checks say so, and what needs them is skipped.
	down := good
	down.InternalURL = "http://127.0.0.1:1"
	results = tokenguard.Check(ctx, down, "")
	if r := result(t, results, "issuer"); !errors.Is(r.Err, introspect.ErrUnavailable) || !strings.Contains(r.String(), "could not be reached at the internal URL http://127.0.0.1:1") {
		t.Errorf("unreachable: %s", r)
	}
	for _, name := range []string{"client-auth", "clock"} {
		if r := result(t, results, name); !errors.Is(r.Err, tokenguard.ErrCheckSkipped) {
			t.Errorf("unreachable: %s, want skipped", r)
		}
	}

	// Missing fields: the config check says which, the network is not tried.
	results = tokenguard.Check(ctx, tokenguard.Config{Key: w.key}, "t")
	if r := results[0]; r.Name != "config" || !strings.Contains(r.String(), "set Config.Issuer") || !strings.Contains(r.String(), "Config.ProjectID") {
		t.Errorf("empty config: %s", r)
	}
	if got := checkNames(results); got != "config key issuer client-auth clock token" {
		t.Errorf("empty config: names %q", got)
	}
}

// TestCheckClockSkew: a server whose Date header is minutes off is reported
// with the direction and the size of the skew.
func TestCheckClockSkew(t *testing.T) {
	t.Parallel()
	for _, off := range []time.Duration{-5 * time.Minute, 3 * time.Minute} {
		w := newPublicWorld(t, "http://zitadel.example:8080")
		target, _ := url.Parse(w.srv.URL())
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.ModifyResponse = func(resp *http.Response) error {
			resp.Header.Set("Date", time.Now().Add(off).UTC().Format(http.TimeFormat))
			return nil
		}
		front := httptest.NewServer(proxy)
		t.Cleanup(front.Close)
		cfg := tokenguard.Config{Issuer: "http://zitadel.example:8080", InternalURL: front.URL, InsecureAllowHTTP: true, Key: w.key, ProjectID: w.project}
		results := tokenguard.Check(context.Background(), cfg, "")
		r := result(t, results, "clock")
		want := "behind"
		if off < 0 {
			want = "ahead of"
		}
		if r.OK() || !strings.Contains(r.String(), want+" the server's") || !strings.Contains(r.String(), "synchronize the clock") {
			t.Errorf("Date off by %v: %s", off, r)
		}
		if r := result(t, results, "client-auth"); !r.OK() {
			t.Errorf("Date off by %v: %s, want the other checks unaffected", off, r)
		}
	}
}

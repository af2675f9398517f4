package main

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
)

// TestTokenInternalURL: a service user's job inside the cluster gets a
// token from a server that names itself by a public issuer (not resolvable
// here: .invalid) through -internal-url, and the API accepts that token.
// Without the flag the public name leads nowhere; plain http to a host that
// is not loopback is refused before any request.
func TestTokenInternalURL(t *testing.T) {
	t.Parallel()
	const issuer, host = "http://zitadel.invalid:8080", "zitadel.invalid:8080"
	var mu sync.Mutex
	var seen []string // path Host instance-header, per request
	srv, err := devserver.Start(devserver.WithIssuer(issuer), devserver.WithRequestObserver(func(r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+r.Host+" "+r.Header.Get(tokenguard.InstanceHostHeader))
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	requests := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	project := srv.CreateProject("p").ID
	app, _ := srv.CreateAPIApp(project)
	user, err := srv.CreateServiceUser("job", devserver.Grant{ProjectID: project, Roles: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	apiKey, userKey := filepath.Join(dir, "api.json"), filepath.Join(dir, "job.json")
	if err := os.WriteFile(apiKey, app.KeyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userKey, user.KeyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	token := []string{"token", "-issuer", issuer, "-key-file", userKey, "-project-id", project, "-timeout", "10s", "-insecure-allow-http"}

	r := cli("", append(token, "-internal-url", srv.URL())...)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("token -internal-url %s: %+v", srv.URL(), r)
	}
	tok := strings.TrimSpace(r.stdout)
	want := []string{"/.well-known/openid-configuration " + host + " " + host, devserver.TokenPath + " " + host + " " + host}
	if got := requests(); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("the server saw %q, want discovery and the token request, both for the public host", got)
	}
	// The API, reaching the server the same way, introspects it: active,
	// with the project audience, for the service user.
	r = cli("", "inspect", "-issuer", issuer, "-key-file", apiKey, "-project-id", project, "-insecure-allow-http", "-internal-url", srv.URL(), "-role", "reader", tok)
	if r.code != exitOK || !strings.Contains(r.stdout, "ACCEPTED") || !strings.Contains(r.stdout, "(contains project "+project+")") ||
		!strings.Contains(r.stdout, "subject:   "+user.UserID) {
		t.Errorf("inspect of the token from -internal-url: %+v", r)
	}

	// Without -internal-url the public name does not resolve: a network
	// error (exit 4) that names it, and nothing reaches the server.
	before := len(requests())
	r = cli("", token...)
	if r.code != exitUnavailable || r.stdout != "" {
		t.Errorf("token without -internal-url: exit %d stdout %q, want %d and nothing", r.code, r.stdout, exitUnavailable)
	}
	oneLineError(t, r, "zitadel.invalid")

	// A plain-http issuer on a host that is not loopback, as tokenguard.New
	// refuses it for the API: exit 3 without -insecure-allow-http, even with
	// a loopback -internal-url.
	noAllow := slices.Clip(token[:len(token)-1])
	r = cli("", append(noAllow, "-internal-url", srv.URL())...)
	if r.code != exitConfig || r.stdout != "" {
		t.Errorf("token with a plain-http issuer, no -insecure-allow-http: exit %d stdout %q, want %d and nothing", r.code, r.stdout, exitConfig)
	}
	oneLineError(t, r, `-issuer "`+issuer+`" uses plain http on a host that is not loopback, and the token request carries the service user's signed assertion and gets back an access token: use https, or pass -insecure-allow-http for a trusted network`)

	// Plain http to an internal host that is not loopback: refused (exit
	// 3) with what to change, before any request; with -insecure-allow-http
	// the same command goes on to try the network (that name does not
	// resolve). The issuer is https here, so that only -internal-url is at
	// fault.
	const plain = "http://zitadel.zitadel.svc.invalid:8080"
	httpsToken := []string{"token", "-issuer", "https://zitadel.invalid", "-key-file", userKey, "-project-id", project, "-timeout", "10s"}
	r = cli("", append(httpsToken, "-internal-url", plain)...)
	if r.code != exitConfig || r.stdout != "" {
		t.Errorf("token -internal-url %s: exit %d stdout %q, want %d and nothing", plain, r.code, r.stdout, exitConfig)
	}
	oneLineError(t, r, `-internal-url "`+plain+`" uses plain http on a host that is not loopback, and each request carries the service user's signed assertion and gets back an access token: use https, or pass -insecure-allow-http for a trusted network`)
	r = cli("", append(httpsToken, "-internal-url", plain, "-insecure-allow-http")...)
	if r.code != exitUnavailable {
		t.Errorf("token -internal-url %s -insecure-allow-http: exit %d, want %d (the flag lifts the refusal): %+v", plain, r.code, exitUnavailable, r)
	}
	oneLineError(t, r, "zitadel.zitadel.svc.invalid")
	if n := len(requests()) - before; n != 0 {
		t.Errorf("%d requests reached the server without a working -internal-url", n)
	}
}

// TestTokenInternalURLBadValues: a bad -internal-url (or a TLS server name
// that cannot apply) is a configuration error, exit 3, as doctor reports the
// same value, with one line that names the flag; no request is made (the
// issuer is the unreachable 127.0.0.1:1, which would be exit 4).
func TestTokenInternalURLBadValues(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	const iss = "http://127.0.0.1:1"
	tests := []struct {
		name   string
		flags  []string
		wantIn string
	}{
		{"not a URL", []string{"-internal-url", "zitadel.svc:8080"}, `-internal-url "zitadel.svc:8080" must be an absolute http or https URL with no path, query or fragment, such as http://zitadel.zitadel.svc.cluster.local:8080`},
		{"a path", []string{"-internal-url", "https://zitadel.svc/zitadel"}, `-internal-url "https://zitadel.svc/zitadel" must be an absolute http or https URL`},
		{"user info", []string{"-internal-url", "https://admin:secret@zitadel.svc"}, "must be an absolute http or https URL"},
		{"server name without internal URL", []string{"-internal-tls-server-name", "auth.example.com"}, "-internal-tls-server-name is set without -internal-url"},
		{"server name with plain http", []string{"-internal-url", "http://127.0.0.1:2", "-internal-tls-server-name", "auth.example.com"}, `-internal-tls-server-name is set but -internal-url "http://127.0.0.1:2" is not https`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := cli("", append([]string{"token", "-issuer", iss, "-key-file", w.adminKey, "-project-id", w.project}, tt.flags...)...)
			if r.code != exitConfig || r.stdout != "" {
				t.Errorf("token %q: exit %d stdout %q, want %d and nothing", tt.flags, r.code, r.stdout, exitConfig)
			}
			oneLineError(t, r, tt.wantIn)
			if d := cli("", append([]string{"doctor", "-issuer", iss, "-key-file", w.apiKey, "-project-id", w.project}, tt.flags...)...); d.code != r.code {
				t.Errorf("doctor %q: exit %d, token's is %d; want the same", tt.flags, d.code, r.code)
			}
		})
	}
	if r := cli("", "token", "-internal-url"); r.code != exitUsage || !strings.Contains(r.stderr, "flag needs an argument: -internal-url") {
		t.Errorf("token -internal-url without a value: %+v", r)
	}
}

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
)

// doctorLine returns the stdout line of the named check.
func doctorLine(t *testing.T, r result, name string) string {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if strings.HasPrefix(l, name+": ") {
			return l
		}
	}
	t.Fatalf("no %s line in doctor's output:\n%s", name, r.stdout)
	return ""
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	iss := w.srv.Issuer()
	base := []string{"doctor", "-issuer", iss, "-key-file", w.apiKey, "-project-id", w.project}

	r := cli("", base...)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("doctor, all good: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := []string{"config", "key", "issuer", "client-auth", "clock"}
	if len(lines) != len(want) {
		t.Fatalf("doctor printed %d lines, want %d:\n%s", len(lines), len(want), r.stdout)
	}
	for i, name := range want {
		if !strings.HasPrefix(lines[i], name+": ok") {
			t.Errorf("line %d = %q, want %s: ok", i, lines[i], name)
		}
	}

	reader := strings.TrimSpace(cli("", "token", "-issuer", iss, "-key-file", w.rKey, "-project-id", w.project).stdout)
	if r := cli("", append(base, reader)...); r.code != exitOK || !strings.Contains(doctorLine(t, r, "token"), "token: ok (accepted: subject") {
		t.Errorf("doctor with a good token: %+v", r)
	}
	if r := cli(reader+"\n", append(base, "-")...); r.code != exitOK || !strings.Contains(r.stdout, "token: ok") {
		t.Errorf("doctor with the token on stdin: %+v", r)
	}

	// A token without the project audience scope: exit 1, and the line
	// names the scope to request.
	key, _ := clientauth.LoadKey(w.rKey)
	noAud, err := (&clientauth.JWTBearer{Key: key, Issuer: iss}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r = cli("", append(base, noAud.AccessToken)...)
	if line := doctorLine(t, r, "token"); r.code != exitRefused || !strings.Contains(line, "401 invalid_token") ||
		!strings.Contains(line, "urn:zitadel:iam:org:project:id:"+w.project+":aud") {
		t.Errorf("token without the audience scope: exit %d, line %q", r.code, line)
	}
	oneLineError(t, r, "1 of 6 checks failed: token")

	other, err := devserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	foreignApp, _ := other.CreateAPIApp(other.CreateProject("x").ID)
	localhost := strings.Replace(iss, "127.0.0.1", "localhost", 1)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		check    string // the line that must say what is wrong
		wantIn   string
	}{
		{"wrong key file path", []string{"-issuer", iss, "-key-file", filepath.Join(w.dir, "nope.json"), "-project-id", w.project}, exitConfig, "key", "nope.json: no such file or directory; check the path"},
		{"unparsable key", []string{"-issuer", iss, "-key-file", w.write(t, "broken.json", []byte(`{"type":"application","keyId":"k","clientId":"c","key":"not PEM"}`)), "-project-id", w.project}, exitConfig, "key", "field key"},
		{"not JSON", []string{"-issuer", iss, "-key-file", w.write(t, "junk.json", []byte("hello")), "-project-id", w.project}, exitConfig, "key", "not a ZITADEL key file as downloaded"},
		{"service user key", []string{"-issuer", iss, "-key-file", w.rKey, "-project-id", w.project}, exitConfig, "key", `type "serviceaccount"; the API needs its application key`},
		{"issuer with a trailing slash", []string{"-issuer", iss + "/", "-key-file", w.apiKey, "-project-id", w.project}, exitConfig, "issuer", "drop the trailing slash"},
		{"issuer with another host", []string{"-issuer", localhost, "-key-file", w.apiKey, "-project-id", w.project}, exitConfig, "issuer", `names issuer "` + iss + `"`},
		{"key the server does not know", []string{"-issuer", iss, "-key-file", w.write(t, "foreign.json", foreignApp.KeyJSON), "-project-id", w.project}, exitConfig, "client-auth", "rejected this API's client authentication"},
		{"server unreachable", []string{"-issuer", "http://127.0.0.1:1", "-key-file", w.apiKey, "-project-id", w.project}, exitUnavailable, "issuer", "could not be reached"},
		{"plain http beyond loopback", []string{"-issuer", "http://zitadel.example:8080", "-key-file", w.apiKey, "-project-id", w.project}, exitConfig, "config", "plain http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := cli("", append([]string{"doctor"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, r.stdout)
			}
			if line := doctorLine(t, r, tt.check); !strings.Contains(line, tt.wantIn) {
				t.Errorf("%s line = %q, want it to mention %q", tt.check, line, tt.wantIn)
			}
			oneLineError(t, r, tt.check)
		})
	}

	for _, args := range [][]string{{"-issuer", iss}, append(base[1:], "a", "b")} {
		if r := cli("", append([]string{"doctor"}, args...)...); r.code != exitUsage {
			t.Errorf("doctor %q: %+v, want exit %d", args, r, exitUsage)
		}
	}
}

// TestDoctorInternalURL: a server that names itself by a public issuer,
// reached at its loopback address, passes; the clock check catches a Date
// header minutes off (a proxy in front rewrites it).
func TestDoctorInternalURL(t *testing.T) {
	t.Parallel()
	const issuer = "http://zitadel.example:8080"
	srv, err := devserver.Start(devserver.WithIssuer(issuer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	project := srv.CreateProject("p").ID
	app, _ := srv.CreateAPIApp(project)
	keyFile := filepath.Join(t.TempDir(), "api.json")
	if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"doctor", "-issuer", issuer, "-key-file", keyFile, "-project-id", project, "-insecure-allow-http"}

	if r := cli("", append(base, "-internal-url", srv.URL())...); r.code != exitOK || !strings.Contains(doctorLine(t, r, "issuer"), "reached at "+srv.URL()) {
		t.Errorf("doctor -internal-url: %+v", r)
	}
	// inspect reaches the server the same way.
	user, _ := srv.CreateServiceUser("bot", devserver.Grant{ProjectID: project, Roles: []string{"reader"}})
	tok, err := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project}})
	if err != nil {
		t.Fatal(err)
	}
	inspect := []string{"inspect", "-issuer", issuer, "-key-file", keyFile, "-project-id", project, "-insecure-allow-http", "-internal-url", srv.URL(), "-role", "reader", tok}
	if r := cli("", inspect...); r.code != exitOK || !strings.Contains(r.stdout, "ACCEPTED") {
		t.Errorf("inspect -internal-url: %+v", r)
	}

	// Without it, the issuer's name does not lead to the server; with the
	// internal URL as the issuer, the server does not know the instance.
	r := cli("", "doctor", "-issuer", srv.URL(), "-key-file", keyFile, "-project-id", project)
	if line := doctorLine(t, r, "issuer"); r.code != exitConfig || !strings.Contains(line, "status 404") {
		t.Errorf("the internal URL as the issuer: exit %d, %q", r.code, line)
	}

	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		resp.Header.Set("Date", time.Now().Add(-4*time.Minute).UTC().Format(http.TimeFormat))
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	r = cli("", append(base, "-internal-url", front.URL)...)
	if line := doctorLine(t, r, "clock"); r.code != exitConfig || !strings.Contains(line, "ahead of the server's") || !strings.Contains(line, "synchronize the clock") {
		t.Errorf("clock skew: exit %d, %q\n%s", r.code, line, r.stdout)
	}
	oneLineError(t, r, "1 of 5 checks failed: clock")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
)

type world struct {
	srv                    *devserver.Server
	project                string
	apiKey, adminKey, rKey string // key file paths
	dir                    string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv, err := devserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := &world{srv: srv, project: srv.CreateProject("p").ID, dir: t.TempDir()}
	api, _ := srv.CreateAPIApp(w.project)
	admin, _ := srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: w.project, Roles: []string{"admin"}})
	reader, _ := srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: w.project, Roles: []string{"reader"}})
	w.apiKey, w.adminKey, w.rKey = w.write(t, "api.json", api.KeyJSON), w.write(t, "admin.json", admin.KeyJSON), w.write(t, "reader.json", reader.KeyJSON)
	return w
}

func (w *world) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
}

func cli(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// oneLineError checks the error contract: exactly one line on stderr.
func oneLineError(t *testing.T, r result, wantIn string) {
	t.Helper()
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "tokenguard: ") || !strings.Contains(r.stderr, wantIn) {
		t.Errorf("stderr = %q, want one line starting with \"tokenguard: \" that mentions %q", r.stderr, wantIn)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if r := cli(""); r.code != exitUsage || !strings.Contains(r.stderr, "usage:") {
		t.Errorf("no command: %+v", r)
	}
	if r := cli("", "frobnicate"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %+v", r)
	}
	if r := cli("", "help"); r.code != exitOK || !strings.Contains(r.stdout, "tokenguard inspect") {
		t.Errorf("help: %+v", r)
	}
	if r := cli("", "token", "-h"); r.code != exitOK || !strings.Contains(r.stderr, "-project-id") {
		t.Errorf("token -h: %+v", r)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	iss := w.srv.Issuer()
	r := cli("", "token", "-issuer", iss, "-key-file", w.adminKey, "-project-id", w.project)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("token: %+v", r)
	}
	tok := strings.TrimSpace(r.stdout)
	if strings.Contains(tok, "\n") || tok == "" {
		t.Fatalf("token printed %q, want the access token alone", r.stdout)
	}
	if r := cli("", "inspect", "-issuer", iss, "-key-file", w.apiKey, "-project-id", w.project, tok); r.code != exitOK {
		t.Errorf("the printed token is not accepted by the API: %+v", r)
	}

	r = cli("", "token", "-issuer", iss, "-key-file", w.adminKey, "-project-id", w.project, "-scope", "profile", "-json")
	var resp struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp.AccessToken == "" || resp.ExpiresIn <= 0 ||
		!strings.Contains(resp.Scope, clientauth.ProjectAudienceScope(w.project)) || !strings.Contains(resp.Scope, "profile") {
		t.Errorf("token -json = %q (%v)", r.stdout, err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantIn   string
	}{
		{"unknown project", []string{"-issuer", iss, "-key-file", w.adminKey, "-project-id", "123"}, exitConfig, "invalid_scope"},
		{"unreachable issuer", []string{"-issuer", "http://127.0.0.1:1", "-key-file", w.adminKey, "-project-id", w.project}, exitUnavailable, "connection refused"},
		{"application key", []string{"-issuer", iss, "-key-file", w.apiKey, "-project-id", w.project}, exitConfig, "service user key"},
		{"missing key file", []string{"-issuer", iss, "-key-file", filepath.Join(w.dir, "nope.json"), "-project-id", w.project}, exitConfig, "nope.json"},
		{"broken key file", []string{"-issuer", iss, "-key-file", w.write(t, "broken.json", []byte(`{"type":"serviceaccount","keyId":"k","userId":"u","key":"x"}`)), "-project-id", w.project}, exitConfig, "field key"},
		{"missing flags", []string{"-issuer", iss}, exitUsage, "missing -key-file, -project-id"},
		{"stray argument", []string{"-issuer", iss, "-key-file", w.adminKey, "-project-id", w.project, "extra"}, exitUsage, "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli("", append([]string{"token"}, tt.args...)...)
			if r.code != tt.wantCode || r.stdout != "" {
				t.Errorf("exit %d stdout %q, want %d and nothing", r.code, r.stdout, tt.wantCode)
			}
			oneLineError(t, r, tt.wantIn)
		})
	}
	if r := cli("", "token", "-bogus"); r.code != exitUsage || !strings.Contains(r.stderr, "flag provided but not defined: -bogus") {
		t.Errorf("bad flag: %+v", r)
	}
}

func TestInspect(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	iss := w.srv.Issuer()
	base := []string{"inspect", "-issuer", iss, "-key-file", w.apiKey, "-project-id", w.project}
	reader := strings.TrimSpace(cli("", "token", "-issuer", iss, "-key-file", w.rKey, "-project-id", w.project).stdout)

	r := cli("", append(base, reader)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "ACCEPTED") || !strings.Contains(r.stdout, "roles:     reader") {
		t.Errorf("good token: %+v", r)
	}
	if r := cli(reader+"\n", base...); r.code != exitOK {
		t.Errorf("token on stdin: %+v", r)
	}
	if r := cli("", append(base, "-role", "admin", reader)...); r.code != exitRefused || !strings.Contains(r.stdout, "403") || !strings.Contains(r.stdout, `requires project role "admin"`) {
		t.Errorf("missing role: %+v", r)
	}

	// The common mistake: a token without the project audience scope.
	key, _ := clientauth.LoadKey(w.rKey)
	noAud, err := (&clientauth.JWTBearer{Key: key, Issuer: iss}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r = cli("", append(base, noAud.AccessToken)...)
	if r.code != exitRefused || !strings.Contains(r.stdout, "REFUSED") || !strings.Contains(r.stdout, "request scope urn:zitadel:iam:org:project:id:"+w.project+":aud") {
		t.Errorf("token without the audience scope: %+v", r)
	}

	other, _ := devserver.Start()
	defer other.Close()
	foreignApp, _ := other.CreateAPIApp(other.CreateProject("x").ID)
	foreignKey := w.write(t, "foreign.json", foreignApp.KeyJSON)

	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantIn   string
	}{
		{"no token", base[1:], "", exitUsage, "no token"},
		{"two tokens", append(base[1:], "a", "b"), "", exitUsage, "one token"},
		{"unreachable issuer", []string{"-issuer", "http://127.0.0.1:1", "-key-file", w.apiKey, "-project-id", w.project, "t"}, "", exitUnavailable, "unavailable"},
		{"service user key", []string{"-issuer", iss, "-key-file", w.rKey, "-project-id", w.project, "t"}, "", exitConfig, "application key"},
		{"key of another server", []string{"-issuer", iss, "-key-file", foreignKey, "-project-id", w.project, reader}, "", exitConfig, "rejected this API's credentials"},
		{"missing flags", []string{"t"}, "", exitUsage, "missing -issuer, -key-file, -project-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(tt.stdin, append([]string{"inspect"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d (%+v)", r.code, tt.wantCode, r)
			}
			oneLineError(t, r, tt.wantIn)
		})
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestDev(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "-addr", "127.0.0.1:0", "-out", dir}, strings.NewReader(""), out, errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Ctrl+C") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	text := out.String()
	iss := regexp.MustCompile(`Issuer:\s+(\S+)`).FindStringSubmatch(text)
	pid := regexp.MustCompile(`Project ID:\s+(\S+)`).FindStringSubmatch(text)
	if iss == nil || pid == nil {
		cancel()
		t.Fatalf("dev printed:\n%s\nstderr: %s", text, errb)
	}
	for _, f := range []string{"api-key.json", "admin-bot.json", "reader-bot.json"} {
		if _, err := clientauth.LoadKey(filepath.Join(dir, f)); err != nil {
			t.Errorf("key file %s: %v", f, err)
		}
	}
	// The printed commands work: a token for admin-bot passes inspect with role admin.
	tok := cli("", "token", "-issuer", iss[1], "-key-file", filepath.Join(dir, "admin-bot.json"), "-project-id", pid[1])
	if tok.code != exitOK {
		t.Fatalf("token against dev: %+v", tok)
	}
	if r := cli("", "inspect", "-issuer", iss[1], "-key-file", filepath.Join(dir, "api-key.json"), "-project-id", pid[1], "-role", "admin", strings.TrimSpace(tok.stdout)); r.code != exitOK {
		t.Errorf("inspect against dev: %+v", r)
	}
	if !strings.Contains(text, "go run ./cmd/tokenguard token -issuer "+iss[1]) || !strings.Contains(text, "go run ./examples/nethttp") {
		t.Errorf("dev output lacks the copy-paste commands:\n%s", text)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("dev exit %d after interrupt, want 0; stderr %s", code, errb)
	}
	if r := cli("", "dev", "-addr", "256.1.1.1:0"); r.code != exitConfig {
		t.Errorf("dev on a bad address: %+v", r)
	}
}

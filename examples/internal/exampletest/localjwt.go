package exampletest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
)

// LocalJWT checks LOCAL_JWT (-local-jwt): against the development server
// issuing JWT access tokens, the first use of each of 10 JWTs is decided
// while the server holds every introspection (none is on the request
// path), and a JWT without the project in aud gets 401 invalid_token naming
// the audience scope. newHandler builds the example's router for guard;
// run is the program, started with LOCAL_JWT=true and nothing else.
func LocalJWT(t *testing.T, run RunFunc, newHandler func(t *testing.T, guard *tokenguard.Guard) http.Handler) {
	t.Run("JWTs decided locally", func(t *testing.T) {
		var mu sync.Mutex
		var held chan struct{}
		srv, err := devserver.Start(devserver.WithJWTAccessTokens())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		srv.SetIntrospectionFault(func(_ http.ResponseWriter, r *http.Request) bool {
			mu.Lock()
			ch := held
			mu.Unlock()
			if ch != nil {
				select {
				case <-ch:
				case <-r.Context().Done():
				}
			}
			return false
		})
		project := srv.CreateProject("example")
		app, err := srv.CreateAPIApp(project.ID)
		if err != nil {
			t.Fatal(err)
		}
		user, err := srv.CreateServiceUser("bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader", "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(t.TempDir(), "api-key.json")
		if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := exampleapp.Config{Issuer: srv.Issuer(), KeyFile: keyFile, ProjectID: project.ID, Addr: "127.0.0.1:0", LocalJWT: true}
		guard, err := exampleapp.NewGuard(context.Background(), cfg, exampleapp.DiscardLogs())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = guard.Close() })
		api := httptest.NewServer(newHandler(t, guard))
		t.Cleanup(api.Close)

		tokens := make([]string, 10)
		for i := range tokens {
			if tokens[i], err = srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project.ID}, JWT: true}); err != nil {
				t.Fatal(err)
			}
		}
		release := make(chan struct{})
		mu.Lock()
		held = release
		mu.Unlock()
		for _, tok := range tokens {
			for _, path := range []string{"/api/me", "/api/admin", "/api/ping"} {
				if code, body := get(t, api.URL+path, tok); code != http.StatusOK {
					t.Errorf("GET %s with a new JWT while every introspection is held = %d %s, want 200", path, code, body)
				}
			}
		}
		mu.Lock()
		held = nil
		mu.Unlock()
		close(release)
		for deadline := time.Now().Add(10 * time.Second); srv.IntrospectionCalls() < int64(len(tokens)); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("introspections = %d, want one background confirmation per JWT", srv.IntrospectionCalls())
			}
		}

		noAud, err := srv.MintToken(user.UserID, devserver.TokenOptions{JWT: true})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+noAud)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
			!strings.Contains(challenge, "urn:zitadel:iam:org:project:id:"+project.ID+":aud") {
			t.Errorf("GET /api/me with a JWT without the project in aud = %d %q, want 401 invalid_token naming the audience scope", resp.StatusCode, challenge)
		}
	})
	t.Run("out of the box with LOCAL_JWT=true", func(t *testing.T) {
		base, out := start(t, run, nil, map[string]string{"ADDR": "127.0.0.1:0", "LOCAL_JWT": "true"})
		curls := regexp.MustCompile(`curl -i (?:-H 'Authorization: Bearer (\S+)' )?(http://\S+)`).FindAllStringSubmatch(out.String(), -1)
		want := []int{200, 401, 200, 200, 403}
		if len(curls) != len(want) {
			t.Fatalf("printed %d curl lines, want %d:\n%s", len(curls), len(want), out)
		}
		for i, c := range curls {
			if c[1] != "" && strings.Count(c[1], ".") != 2 {
				t.Errorf("curl line %d carries %q, want a JWT", i, c[1])
			}
			if !strings.HasPrefix(c[2], base) {
				t.Errorf("curl line %d targets %s, want %s", i, c[2], base)
			}
			if code, body := get(t, c[2], c[1]); code != want[i] {
				t.Errorf("curl line %d: %d %s, want %d", i, code, body, want[i])
			}
		}
	})
	t.Run("bad LOCAL_JWT", func(t *testing.T) {
		err := run(context.Background(), nil, func(k string) string { return map[string]string{"LOCAL_JWT": "yes please"}[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "LOCAL_JWT") {
			t.Errorf("run(LOCAL_JWT=yes please) err = %v, want it to name LOCAL_JWT", err)
		}
	})
}

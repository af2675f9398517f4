// Package exampletest is the contract both examples must meet, as tests that
// outside tools would run against them: the routes and every row of the
// error table, over HTTP, against an in-process authorization server.
package exampletest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/internal/fakeas"
)

// ProjectID is the project of the API under test.
const ProjectID = "311111111111111111"

// Stack is an authorization server with an API application of [ProjectID],
// and that application's configuration.
type Stack struct {
	AS       *fakeas.Server
	Config   exampleapp.Config
	ClientID string
}

// NewStack starts an authorization server and writes the API's key file.
func NewStack(t *testing.T) *Stack {
	t.Helper()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, clientID := as.NewApp(ProjectID)
	keyFile := filepath.Join(t.TempDir(), "api-key.json")
	if err := os.WriteFile(keyFile, keyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	return &Stack{AS: as, ClientID: clientID, Config: exampleapp.Config{Issuer: as.Issuer, KeyFile: keyFile, ProjectID: ProjectID, Addr: "127.0.0.1:0"}}
}

type want struct {
	status    int
	challenge string // prefix of WWW-Authenticate; "-" for none
	code      string // JSON "error"
	descIn    string
}

// Run checks the example routes and error table against the handler that
// newHandler builds for the stack's configuration.
func Run(t *testing.T, newHandler func(t *testing.T, cfg exampleapp.Config) http.Handler) {
	s := NewStack(t)
	h := newHandler(t, s.Config)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	roles := func(rs ...string) map[string]map[string]string {
		m := map[string]map[string]string{}
		for _, r := range rs {
			m[r] = map[string]string{"org-1": "acme.example"}
		}
		return m
	}
	mint := func(tk fakeas.Token) string {
		if tk.Audience == nil {
			tk.Audience = []string{ProjectID}
		}
		if tk.Subject == "" {
			tk.Subject = "user-1"
		}
		tk.ClientID, tk.OrgID = "svc-client", "org-1"
		return s.AS.Mint(tk)
	}
	reader := mint(fakeas.Token{Roles: roles("reader")})
	admin := mint(fakeas.Token{Roles: roles("reader", "admin")})
	pat := mint(fakeas.Token{Audience: []string{s.ClientID}})
	noAud := mint(fakeas.Token{Audience: []string{"999"}})
	expired := mint(fakeas.Token{Expiry: time.Now().Add(-time.Minute)})
	future := mint(fakeas.Token{Extra: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}})
	hint := "urn:zitadel:iam:org:project:id:" + ProjectID + ":aud"

	do := func(t *testing.T, path string, auth ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	expect := func(t *testing.T, path string, w want, auth ...string) string {
		t.Helper()
		resp, body := do(t, path, auth...)
		if resp.StatusCode != w.status {
			t.Fatalf("GET %s = %d %s, want %d", path, resp.StatusCode, body, w.status)
		}
		ch := resp.Header.Get("WWW-Authenticate")
		if (w.challenge == "-" && ch != "") || (w.challenge != "-" && w.challenge != "" && !strings.HasPrefix(ch, w.challenge)) {
			t.Errorf("GET %s WWW-Authenticate = %q, want %q", path, ch, w.challenge)
		}
		if w.code != "" {
			var e struct{ Error, Error_description string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != w.code || !strings.Contains(e.Error_description, w.descIn) {
				t.Errorf("GET %s body = %s, want error %q with %q", path, body, w.code, w.descIn)
			}
		}
		if w.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s = 503 without Retry-After", path)
		}
		return body
	}

	t.Run("public ping", func(t *testing.T) {
		if body := expect(t, "/ping", want{status: 200, challenge: "-"}); body != "pong" {
			t.Errorf("GET /ping body = %q, want pong", body)
		}
	})
	t.Run("protected ping", func(t *testing.T) {
		if body := expect(t, "/api/ping", want{status: 200}, "Bearer "+reader); body != "pong" {
			t.Errorf("GET /api/ping body = %q, want pong", body)
		}
	})
	t.Run("me", func(t *testing.T) {
		body := expect(t, "/api/me", want{status: 200}, "Bearer "+admin)
		var me exampleapp.Me
		if err := json.Unmarshal([]byte(body), &me); err != nil {
			t.Fatalf("GET /api/me body %q: %v", body, err)
		}
		if me.Subject != "user-1" || me.ClientID != "svc-client" || me.OrgID != "org-1" || strings.Join(me.Roles, ",") != "admin,reader" || me.Expiry < time.Now().Unix() {
			t.Errorf("GET /api/me = %+v", me)
		}
	})
	t.Run("admin with role", func(t *testing.T) { expect(t, "/api/admin", want{status: 200}, "Bearer "+admin) })
	t.Run("client-ID audience (personal access token)", func(t *testing.T) { expect(t, "/api/me", want{status: 200}, "Bearer "+pat) })

	// The error table.
	t.Run("no credentials", func(t *testing.T) {
		resp, _ := do(t, "/api/me")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="api"` {
			t.Errorf("GET /api/me without a token = %d %q, want 401 with a bare challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("malformed header", func(t *testing.T) {
		expect(t, "/api/me", want{400, `Bearer realm="api", error="invalid_request"`, "invalid_request", "b64token"}, "Bearer not,a,token")
	})
	t.Run("two Authorization headers", func(t *testing.T) {
		expect(t, "/api/me", want{400, `Bearer realm="api", error="invalid_request"`, "invalid_request", "more than one"}, "Bearer "+reader, "Bearer "+reader)
	})
	t.Run("oversized token", func(t *testing.T) {
		expect(t, "/api/me", want{400, `Bearer realm="api", error="invalid_request"`, "invalid_request", "8 KiB"}, "Bearer "+strings.Repeat("x", 9<<10))
	})
	t.Run("inactive", func(t *testing.T) {
		expect(t, "/api/me", want{401, `Bearer realm="api", error="invalid_token"`, "invalid_token", hint}, "Bearer unknown")
	})
	t.Run("expired", func(t *testing.T) {
		expect(t, "/api/me", want{401, `Bearer realm="api", error="invalid_token"`, "invalid_token", "not active"}, "Bearer "+expired)
	})
	t.Run("not yet valid", func(t *testing.T) {
		expect(t, "/api/me", want{401, `Bearer realm="api", error="invalid_token"`, "invalid_token", "not valid yet"}, "Bearer "+future)
	})
	t.Run("wrong audience names the scope", func(t *testing.T) {
		expect(t, "/api/me", want{401, `Bearer realm="api", error="invalid_token"`, "invalid_token", hint}, "Bearer "+noAud)
	})
	t.Run("missing role", func(t *testing.T) {
		expect(t, "/api/admin", want{403, `Bearer realm="api", error="insufficient_scope"`, "insufficient_scope", "admin"}, "Bearer "+reader)
	})
	t.Run("authorization server unavailable", func(t *testing.T) {
		fresh := mint(fakeas.Token{})
		s.AS.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(http.StatusBadGateway); return true })
		defer s.AS.SetFault(nil)
		expect(t, "/api/me", want{503, "-", "temporarily_unavailable", "retry later"}, "Bearer "+fresh)
	})
	t.Run("client authentication rejected", func(t *testing.T) {
		fresh := mint(fakeas.Token{})
		s.AS.SetFault(func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"key revoked"}`))
			return true
		})
		defer s.AS.SetFault(nil)
		body := expect(t, "/api/me", want{500, "-", "server_error", ""}, "Bearer "+fresh)
		if strings.Contains(body, "revoked") {
			t.Errorf("500 body %q leaks upstream detail", body)
		}
	})
}

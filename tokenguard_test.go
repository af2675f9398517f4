package tokenguard_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

const project = "311111111111111111"

func writeKey(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api-key.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func get(h http.Handler, token string) int {
	req := httptest.NewRequest("GET", "/", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})

func TestNewWithKeyFile(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, clientID := as.NewApp(project)
	guard, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project})
	if err != nil {
		t.Fatalf("New() err = %v", err)
	}
	h := guard.Wrap(ok)
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	pat := as.Mint(fakeas.Token{Subject: "u", Audience: []string{clientID}})
	if get(h, tok) != 200 || get(h, pat) != 200 || get(h, "") != 401 {
		t.Errorf("project token %d, client-ID token %d, none %d; want 200, 200, 401", get(h, tok), get(h, pat), get(h, ""))
	}
	admin := guard.Require(middleware.Role("admin"))(ok)
	if got := get(admin, tok); got != 403 {
		t.Errorf("role admin without the role = %d, want 403", got)
	}
	as.Revoke(tok)
	if got := get(h, tok); got != 200 {
		t.Errorf("revoked but cached = %d, want 200 until the entry ends", got)
	}
	guard.Invalidate(tok)
	if got := get(h, tok); got != 401 {
		t.Errorf("after Invalidate = %d, want 401", got)
	}
}

func TestNewWithClientSecret(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	id, secret := as.NewSecretApp(project)
	guard, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, ClientID: id, ClientSecret: secret, ProjectID: project})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(guard.Wrap(ok), as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})); got != 200 {
		t.Errorf("client_secret_basic guard = %d, want 200", got)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	key := writeKey(t, keyJSON)
	var sa map[string]string
	_ = json.Unmarshal(keyJSON, &sa)
	sa["type"], sa["userId"] = "serviceaccount", "u1"
	saJSON, _ := json.Marshal(sa)
	saKey := writeKey(t, saJSON)

	tests := []struct {
		name   string
		cfg    tokenguard.Config
		wantIn string
	}{
		{"no issuer", tokenguard.Config{KeyFile: key, ProjectID: project}, "Issuer is required"},
		{"no project", tokenguard.Config{Issuer: as.Issuer, KeyFile: key}, "ProjectID is required"},
		{"no credentials", tokenguard.Config{Issuer: as.Issuer, ProjectID: project}, "exactly one"},
		{"two credentials", tokenguard.Config{Issuer: as.Issuer, ProjectID: project, KeyFile: key, ClientID: "c", ClientSecret: "s"}, "exactly one"},
		{"missing key file", tokenguard.Config{Issuer: as.Issuer, ProjectID: project, KeyFile: "/nonexistent/key.json"}, "/nonexistent/key.json"},
		{"service user key", tokenguard.Config{Issuer: as.Issuer, ProjectID: project, KeyFile: saKey}, "application key"},
		{"plain http remote issuer", tokenguard.Config{Issuer: "http://zitadel.example.com", ProjectID: project, KeyFile: key}, "plain http"},
		{"issuer with trailing slash", tokenguard.Config{Issuer: as.Issuer + "/", ProjectID: project, KeyFile: key}, "trailing slash"},
		{"unreachable issuer", tokenguard.Config{Issuer: "http://127.0.0.1:1", ProjectID: project, KeyFile: key}, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tokenguard.New(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("New() err = %v, want it to mention %q", err, tt.wantIn)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func discardLogs() middleware.Option { return middleware.WithLogger(discard()) }

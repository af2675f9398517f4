package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/middleware"
)

func TestAllInOne(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatalf("run() = %v\n%s", err, out.String())
	}
	got := out.String()
	with, without, ok := strings.Cut(got, "2. Without it")
	if !ok {
		t.Fatalf("output:\n%s", got)
	}
	for _, want := range []string{"GET /api/me -> 200 OK", "GET /api/admin -> 403 Forbidden", `requires project role \"admin\"`} {
		if !strings.Contains(with, want) {
			t.Errorf("with the audience scope, output lacks %q:\n%s", want, with)
		}
	}
	if !strings.Contains(without, "GET /api/me -> 401 Unauthorized") || !strings.Contains(without, "urn:zitadel:iam:org:project:id:") {
		t.Errorf("without the audience scope, want a 401 naming the scope:\n%s", without)
	}
}

func TestAgainstARunningAPI(t *testing.T) {
	srv, err := devserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	project := srv.CreateProject("p")
	app, _ := srv.CreateAPIApp(project.ID)
	user, _ := srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"admin"}})
	dir := t.TempDir()
	apiKey, userKey := filepath.Join(dir, "api.json"), filepath.Join(dir, "user.json")
	_ = os.WriteFile(apiKey, app.KeyJSON, 0o600)
	_ = os.WriteFile(userKey, user.KeyJSON, 0o600)
	guard, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: srv.Issuer(), KeyFile: apiKey, ProjectID: project.ID})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(guard.Require(middleware.Role("admin"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		_, _ = w.Write([]byte(c.Subject))
	})))
	defer api.Close()
	env := map[string]string{"ISSUER": srv.Issuer(), "KEY_FILE": userKey, "PROJECT_ID": project.ID, "API": api.URL}
	var out strings.Builder
	if err := run(context.Background(), nil, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("run() = %v\n%s", err, out.String())
	}
	for _, want := range []string{"GET /api/me -> 200 OK " + user.UserID, "GET /api/admin -> 200 OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), []string{"-issuer", srv.Issuer()}, func(string) string { return "" }, &out, &out); err == nil || !strings.Contains(err.Error(), "KEY_FILE") {
		t.Errorf("run() without a key file = %v, want it to ask for KEY_FILE", err)
	}
}

package exampletest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/resourcemeta"
)

// metadataAndInternalURL checks the program's protected resource metadata
// (public, naming the issuer and the project audience scope) and its
// INTERNAL_URL: a server that names itself by a public issuer, reached at
// its loopback address.
func metadataAndInternalURL(t *testing.T, run RunFunc) {
	t.Run("protected resource metadata", func(t *testing.T) {
		s := NewStack(t)
		env := map[string]string{"ISSUER": s.Config.Issuer, "KEY_FILE": s.Config.KeyFile, "PROJECT_ID": s.Config.ProjectID, "ADDR": "127.0.0.1:0"}
		base, _ := start(t, run, nil, env)
		code, body := get(t, base+resourcemeta.WellKnownPath, "") // no token: public
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
			BearerMethods        []string `json:"bearer_methods_supported"`
			ResourceName         string   `json:"resource_name"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &doc) != nil {
			t.Fatalf("GET %s = %d %s, want 200 and the document", resourcemeta.WellKnownPath, code, body)
		}
		if doc.Resource != base || !slices.Equal(doc.AuthorizationServers, []string{s.Config.Issuer}) ||
			!slices.Contains(doc.ScopesSupported, "urn:zitadel:iam:org:project:id:"+ProjectID+":aud") ||
			!slices.Equal(doc.BearerMethods, []string{"header"}) || doc.ResourceName != exampleapp.ResourceName {
			t.Errorf("metadata = %+v, want resource %s, the issuer, the audience scope", doc, base)
		}
		// RESOURCE_URL names the public URL, and its path moves the document.
		env["RESOURCE_URL"] = "https://api.example.com/shop"
		base, _ = start(t, run, nil, env)
		if code, body := get(t, base+resourcemeta.WellKnownPath+"/shop", ""); code != 200 || !strings.Contains(body, `"resource":"https://api.example.com/shop"`) {
			t.Errorf("with RESOURCE_URL: %d %s", code, body)
		}
		env["RESOURCE_URL"] = "http://api.example.com"
		if err := run(t.Context(), nil, func(k string) string { return env[k] }, nil, nil); err == nil || !strings.Contains(err.Error(), "RESOURCE_URL") {
			t.Errorf("run() with a plain-http RESOURCE_URL err = %v, want it refused", err)
		}
	})
	t.Run("internal URL", func(t *testing.T) {
		const issuer = "http://zitadel.example:8080"
		srv, err := devserver.Start(devserver.WithIssuer(issuer))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		project := srv.CreateProject("p").ID
		app, _ := srv.CreateAPIApp(project)
		user, _ := srv.CreateServiceUser("u", devserver.Grant{ProjectID: project, Roles: []string{"reader"}})
		token, _ := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project}})
		keyFile := filepath.Join(t.TempDir(), "api-key.json")
		if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"-issuer", issuer, "-key-file", keyFile, "-project-id", project, "-addr", "127.0.0.1:0", "-insecure-allow-http"}
		base, _ := start(t, run, args, map[string]string{"INTERNAL_URL": srv.URL()})
		if code, body := get(t, base+"/api/ping", token); code != 200 || body != "pong" {
			t.Errorf("GET /api/ping through INTERNAL_URL = %d %q, want 200 pong", code, body)
		}
	})
}

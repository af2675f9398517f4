package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestRolesOfAnotherProjectWithoutProjectID is the attack on a guard built
// without WithProjectID: a JWT for two projects whose user is admin in the
// other project only carries that project's roles in its generic claim. A
// local decision must not grant them here; the server, asked instead,
// answers for this API's project. With and without WithLocalJWT, and with
// and without WithProjectID, Role(admin) is refused.
func TestRolesOfAnotherProjectWithoutProjectID(t *testing.T) {
	t.Parallel()
	srv, err := devserver.Start(devserver.WithJWTAccessTokens())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	this, other := srv.CreateProject("API"), srv.CreateProject("Other")
	app, err := srv.CreateAPIAppWithSecret(this.ID)
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := srv.CreateServiceUser("mallory", devserver.Grant{ProjectID: other.ID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := srv.MintToken(mallory.UserID, devserver.TokenOptions{JWT: true, ProjectIDs: []string{other.ID, this.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []bool{true, false} {
		for _, withProject := range []bool{true, false} {
			var opts []introspect.Option
			if local {
				opts = append(opts, introspect.WithLocalJWT(introspect.LocalJWT{Issuer: srv.Issuer()}))
			}
			c, err := introspect.New(srv.Issuer()+devserver.IntrospectPath, clientauth.ClientSecretBasic{ClientID: app.ClientID, Secret: app.Secret}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if local {
				if err := c.FetchJWKS(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			var mopts []middleware.Option
			if withProject {
				mopts = append(mopts, middleware.WithProjectID(this.ID))
			}
			mw, err := middleware.New(c, this.ID, mopts...)
			if err != nil {
				t.Fatal(err)
			}
			h := mw.Require(middleware.Role("admin"))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden {
				t.Errorf("local JWT %v, WithProjectID %v: Role(admin) as admin of another project = %d, want 403", local, withProject, rec.Code)
			}
		}
	}
}

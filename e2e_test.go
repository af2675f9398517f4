package tokenguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/events"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// e2e is the whole flow on one machine: the development server, an API
// protected by tokenguard, and service users that get tokens at the token
// endpoint with the jwt-bearer grant.
type e2e struct {
	srv     *devserver.Server
	project devserver.Project
	api     devserver.App
	admin   devserver.ServiceUser
	reader  devserver.ServiceUser
	guard   *tokenguard.Guard
	handler http.Handler
}

func newE2E(t *testing.T, newMiddleware func(t *testing.T, e *e2e) *middleware.Middleware, opts ...devserver.Option) *e2e {
	t.Helper()
	srv, err := devserver.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &e2e{srv: srv, project: srv.CreateProject("API")}
	e.api, _ = srv.CreateAPIApp(e.project.ID)
	e.admin, _ = srv.CreateServiceUser("admin", devserver.Grant{ProjectID: e.project.ID, Roles: []string{"admin", "reader"}})
	e.reader, _ = srv.CreateServiceUser("reader", devserver.Grant{ProjectID: e.project.ID, Roles: []string{"reader"}})
	mw := newMiddleware(t, e)
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": c.Subject, "roles": c.Roles.Names()})
	})))
	mux.Handle("GET /api/admin", mw.Require(middleware.Role("admin"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	e.handler = mux
	return e
}

// withGuard protects the API with tokenguard.New, as a user would, with a
// max TTL of a second.
func withGuard(t *testing.T, e *e2e) *middleware.Middleware {
	return guardWith(t, e, introspect.WithMaxTTL(time.Second))
}

// withGuardDefaults is withGuard with the default max TTL (5 minutes): a
// cached decision stands for the whole of a test unless something
// invalidates it.
func withGuardDefaults(t *testing.T, e *e2e) *middleware.Middleware { return guardWith(t, e) }

func guardWith(t *testing.T, e *e2e, opts ...introspect.Option) *middleware.Middleware {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "api.json")
	if err := os.WriteFile(keyFile, e.api.KeyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: e.srv.Issuer(), KeyFile: keyFile, ProjectID: e.project.ID,
		IntrospectOptions: opts}, middleware.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	e.guard = g
	return g.Middleware
}

// listenForEvents registers an events handler on the guard as an event
// target of the development server, with the signing key the server gives.
func (e *e2e) listenForEvents(t *testing.T) {
	t.Helper()
	hook := httptest.NewUnstartedServer(nil)
	key := e.srv.AddEventTarget("http://" + hook.Listener.Addr().String())
	h, err := events.NewHandler(key, e.guard, events.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = h
	hook.Start()
	t.Cleanup(hook.Close)
}

// rsIntrospector introspects with zitadel/oidc's own resource server client.
type rsIntrospector struct{ rs rs.ResourceServer }

func (r rsIntrospector) Introspect(ctx context.Context, token string) (*introspect.Response, error) {
	resp, err := rs.Introspect[*introspect.Response](ctx, r.rs, token)
	if err != nil {
		return nil, errors.Join(introspect.ErrUnavailable, err)
	}
	if !resp.Active {
		return nil, introspect.ErrInactive
	}
	return resp, nil
}

func withRS(t *testing.T, e *e2e) *middleware.Middleware {
	t.Helper()
	key, err := clientauth.ParseKey(e.api.KeyJSON)
	if err != nil {
		t.Fatal(err)
	}
	var keyPEM struct{ Key string }
	_ = json.Unmarshal(e.api.KeyJSON, &keyPEM)
	server, err := rs.NewResourceServerJWTProfile(context.Background(), e.srv.Issuer(), key.ClientID, key.KeyID, []byte(keyPEM.Key))
	if err != nil {
		t.Fatal(err)
	}
	mw, err := middleware.New(rsIntrospector{server}, e.project.ID, middleware.WithAudience(key.ClientID), middleware.WithProjectID(e.project.ID), middleware.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func (e *e2e) token(t *testing.T, u devserver.ServiceUser, projects ...string) string {
	t.Helper()
	key, err := clientauth.ParseKey(u.KeyJSON)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := (&clientauth.JWTBearer{Key: key, Issuer: e.srv.Issuer(), ProjectIDs: projects}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func (e *e2e) get(path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for name, mw := range map[string]func(*testing.T, *e2e) *middleware.Middleware{"tokenguard": withGuard, "zitadel-oidc-rs": withRS} {
		for _, jwtTokens := range []bool{false, true} {
			kind := map[bool]string{false: "opaque", true: "JWT"}[jwtTokens]
			t.Run(name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				var opts []devserver.Option
				if jwtTokens {
					opts = append(opts, devserver.WithJWTAccessTokens())
				}
				e := newE2E(t, mw, opts...)

				if rec := e.get("/api/me", e.token(t, e.reader, e.project.ID)); rec.Code != 200 || !strings.Contains(rec.Body.String(), e.reader.UserID) {
					t.Errorf("token with the audience scope: %d %s, want 200 with the subject", rec.Code, rec.Body)
				}
				rec := e.get("/api/me", e.token(t, e.reader))
				scope := "urn:zitadel:iam:org:project:id:" + e.project.ID + ":aud"
				if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), scope) || !strings.Contains(rec.Body.String(), scope) {
					t.Errorf("token without the audience scope: %d %q %s, want 401 naming %s", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body, scope)
				}
				if rec := e.get("/api/admin", e.token(t, e.admin, e.project.ID)); rec.Code != 200 {
					t.Errorf("admin on /api/admin: %d, want 200", rec.Code)
				}
				if rec := e.get("/api/admin", e.token(t, e.reader, e.project.ID)); rec.Code != 403 {
					t.Errorf("reader on /api/admin: %d, want 403", rec.Code)
				}
				pat, err := e.srv.MintToken(e.reader.UserID, devserver.TokenOptions{Audience: []string{e.api.ClientID}, JWT: jwtTokens})
				if err != nil {
					t.Fatal(err)
				}
				if rec := e.get("/api/me", pat); rec.Code != 200 {
					t.Errorf("client-ID-only (personal access token style) token: %d, want 200", rec.Code)
				}
			})
		}
	}
}

func TestEndToEndRevocation(t *testing.T) {
	t.Parallel()
	e := newE2E(t, withGuard)
	tok := e.token(t, e.reader, e.project.ID)
	if rec := e.get("/api/me", tok); rec.Code != 200 {
		t.Fatalf("before revocation: %d", rec.Code)
	}
	if err := e.srv.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("/api/me", tok); rec.Code != 200 {
		t.Errorf("revoked, within the cache's max TTL: %d, want 200 (the documented staleness bound)", rec.Code)
	}
	time.Sleep(1100 * time.Millisecond) // the guard's max TTL is 1 s
	if rec := e.get("/api/me", tok); rec.Code != 401 {
		t.Errorf("revoked, after the cache entry expired: %d, want 401", rec.Code)
	}

	tok2 := e.token(t, e.reader, e.project.ID)
	_ = e.get("/api/me", tok2)
	_ = e.srv.Revoke(tok2)
	e.guard.Invalidate(tok2)
	if rec := e.get("/api/me", tok2); rec.Code != 401 {
		t.Errorf("revoked and invalidated: %d, want 401 at once", rec.Code)
	}
}

func TestEndToEndEventRevokesAccess(t *testing.T) {
	t.Parallel()
	e := newE2E(t, withGuard)
	tok := e.token(t, e.reader, e.project.ID)
	if rec := e.get("/api/me", tok); rec.Code != 200 {
		t.Fatalf("before: %d", rec.Code)
	}
	h, err := events.NewHandler("not-the-key", e.guard, events.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(h)
	t.Cleanup(hook.Close)
	e.srv.AddEventTarget(hook.URL) // the server signs with a key this handler was not given
	if err := e.srv.LockUser(e.reader.UserID, true); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("/api/me", tok); rec.Code != 200 {
		t.Errorf("badly signed event: %d, want 200 from the cache (nothing changed)", rec.Code)
	}

	e.listenForEvents(t) // now a target with the right key
	if err := e.srv.LockUser(e.reader.UserID, true); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("/api/me", tok); rec.Code != 401 {
		t.Errorf("after a signed user.locked event: %d, want 401 at once", rec.Code)
	}
	// Revoking a token sends user.token.removed.
	admin := e.token(t, e.admin, e.project.ID)
	_ = e.get("/api/me", admin)
	if err := e.srv.Revoke(admin); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("/api/me", admin); rec.Code != 401 {
		t.Errorf("after a signed user.token.removed event: %d, want 401 at once", rec.Code)
	}
}

// TestEndToEndGrantEventsRevokeRoles: the development server sends ZITADEL's
// user grant events as a role changes or a grant goes; the events handler
// learns each grant's user from user.grant.added and, when a later event
// names only the grant, refuses that user's removed role at once, though the
// decision that allowed it is cached for minutes. A grant the handler never
// saw added (it predates the webhook) leaves the cached decision standing,
// as documented.
func TestEndToEndGrantEventsRevokeRoles(t *testing.T) {
	t.Parallel()
	e := newE2E(t, withGuardDefaults)
	e.listenForEvents(t)

	// bob's and carol's grants are added while the webhook listens.
	bob, err := e.srv.CreateServiceUser("bob", devserver.Grant{ProjectID: e.project.ID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	carol, err := e.srv.CreateServiceUser("carol", devserver.Grant{ProjectID: e.project.ID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	bobTok, carolTok := e.token(t, bob, e.project.ID), e.token(t, carol, e.project.ID)
	oldTok := e.token(t, e.admin, e.project.ID) // admin's grant predates the webhook
	for name, tok := range map[string]string{"bob": bobTok, "carol": carolTok, "admin": oldTok} {
		if rec := e.get("/api/admin", tok); rec.Code != 200 {
			t.Fatalf("%s before: %d %s", name, rec.Code, rec.Body)
		}
	}
	calls := e.srv.IntrospectionCalls()

	// The control: the server takes admin's role away, and the handler
	// cannot tell whose grant changed.
	if err := e.srv.SetRoles(e.admin.UserID, e.project.ID, "reader"); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("/api/admin", oldTok); rec.Code != 200 {
		t.Errorf("a grant the handler never saw added: %d, want 200 from the cache until the max TTL", rec.Code)
	}
	if n := e.srv.IntrospectionCalls(); n != calls {
		t.Errorf("%d introspections after an event the handler could not place, want none", n-calls)
	}

	if err := e.srv.SetRoles(bob.UserID, e.project.ID, "reader"); err != nil { // user.grant.changed
		t.Fatal(err)
	}
	if rec := e.get("/api/admin", bobTok); rec.Code != 403 {
		t.Errorf("bob after user.grant.changed took admin away: %d, want 403 at once", rec.Code)
	}
	if rec := e.get("/api/me", bobTok); rec.Code != 200 {
		t.Errorf("bob's token is still good for routes that need no admin: %d", rec.Code)
	}
	if rec := e.get("/api/admin", carolTok); rec.Code != 200 {
		t.Errorf("carol, whose grant did not change: %d, want 200", rec.Code)
	}

	if err := e.srv.RemoveGrant(carol.UserID, e.project.ID); err != nil { // user.grant.removed: no payload
		t.Fatal(err)
	}
	if rec := e.get("/api/admin", carolTok); rec.Code != 403 {
		t.Errorf("carol after user.grant.removed: %d, want 403 at once", rec.Code)
	}
}

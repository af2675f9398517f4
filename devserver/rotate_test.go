package devserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
)

// jwtPart decodes the header (0) or the payload (1) of a compact JWS.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRotateSigningKeyKeepsOldTokensValid(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	opts := devserver.TokenOptions{ProjectIDs: []string{w.project.ID}, JWT: true}
	before, err := w.srv.MintToken(w.admin.UserID, opts)
	if err != nil {
		t.Fatal(err)
	}
	oldKID := w.srv.SigningKeyID()
	if kid := jwtPart(t, before, 0)["kid"]; kid != oldKID {
		t.Fatalf("kid = %v, want %s", kid, oldKID)
	}
	newKID, err := w.srv.RotateSigningKey()
	if err != nil || newKID == oldKID || w.srv.SigningKeyID() != newKID {
		t.Fatalf("RotateSigningKey() = %q, %v; SigningKeyID() = %q; old %q", newKID, err, w.srv.SigningKeyID(), oldKID)
	}
	after, err := w.srv.MintToken(w.admin.UserID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if kid := jwtPart(t, after, 0)["kid"]; kid != newKID {
		t.Fatalf("kid after rotation = %v, want %s", kid, newKID)
	}
	set, err := jwk.Fetch(context.Background(), w.srv.Issuer()+devserver.KeysPath, jwk.WithHTTPClient(http.DefaultClient))
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{oldKID, newKID} {
		if _, ok := set.LookupKeyID(kid); !ok {
			t.Errorf("JWKS lacks kid %s", kid)
		}
	}
	for _, tok := range []string{before, after} {
		if r, err := w.client.Introspect(context.Background(), tok); err != nil || !r.Active {
			t.Errorf("Introspect = %v, %v; want active", r, err)
		}
	}
}

func TestRoleAssertionOffLeavesRolesOutOfJWTs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	opts := devserver.TokenOptions{ProjectIDs: []string{w.project.ID}, JWT: true}
	with, err := w.srv.MintToken(w.admin.UserID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jwtPart(t, with, 1)[introspect.ClaimRoles]; !ok {
		t.Fatalf("JWT lacks %s by default", introspect.ClaimRoles)
	}
	if err := w.srv.SetRoleAssertion(w.project.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.SetRoleAssertion("nope", false); err == nil {
		t.Error("SetRoleAssertion(unknown project) = nil, want an error")
	}
	without, err := w.srv.MintToken(w.admin.UserID, opts)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtPart(t, without, 1)
	for name := range claims {
		if strings.HasSuffix(name, ":roles") {
			t.Errorf("JWT carries %s with role assertion off", name)
		}
	}
	r, err := w.client.Introspect(context.Background(), without)
	if err != nil || !r.Roles().Has("admin") {
		t.Errorf("Introspect = %v, %v; want roles from the introspection answer", r, err)
	}
}

func TestMintTokenWithAnotherIssuer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok, err := w.srv.MintToken(w.admin.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}, JWT: true, Issuer: "https://evil.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if iss := jwtPart(t, tok, 1)["iss"]; iss != "https://evil.example.com" {
		t.Fatalf("iss = %v", iss)
	}
	if _, err := w.client.Introspect(context.Background(), tok); err == nil {
		t.Error("Introspect(token of another issuer) = active, want inactive")
	}
}

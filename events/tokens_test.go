package events_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/events"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// newClient returns a caching introspection client of fakeas, as a guard
// holds one.
func newClient(t *testing.T, as *fakeas.Server) *introspect.Client {
	t.Helper()
	id, secret := as.NewSecretApp("p1")
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := introspect.New(as.Issuer+fakeas.IntrospectPath, clientauth.ClientSecretBasic{ClientID: id, Secret: secret},
		introspect.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenRemovedInvalidatesOnlyThatToken: a user with two cached tokens
// loses one; the server is asked again about that one only, and the other
// is still served from the cache.
func TestTokenRemovedInvalidatesOnlyThatToken(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"user.token.removed", "user.pat.removed"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			as := fakeas.Start()
			t.Cleanup(as.Close)
			client := newClient(t, as)
			h, err := events.NewHandler(string(key), client, quiet())
			if err != nil {
				t.Fatal(err)
			}
			k := newHook(t, h)
			// fakeas hands out a fresh jti per answer unless told; ZITADEL's is the token ID.
			t1 := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"p1"}, Extra: map[string]any{"jti": "281474976710001"}})
			t2 := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"p1"}, Extra: map[string]any{"jti": "281474976710002"}})
			ctx := context.Background()
			introspectBoth := func() (err1, err2 error) {
				_, err1 = client.Introspect(ctx, t1)
				_, err2 = client.Introspect(ctx, t2)
				return err1, err2
			}
			for range 2 {
				if err1, err2 := introspectBoth(); err1 != nil || err2 != nil {
					t.Fatalf("before: %v, %v", err1, err2)
				}
			}
			if n := as.Answered(); n != 2 {
				t.Fatalf("before: the server answered %d times, want 2 (one per token, then the cache)", n)
			}

			as.Revoke(t1) // ZITADEL removes the token, then tells the webhook
			if got := k.signed(t, ev(typ, "user", "alice", `{"tokenId":"281474976710001"}`)); got != 200 {
				t.Fatalf("signed %s: %d", typ, got)
			}
			err1, err2 := introspectBoth()
			if !errors.Is(err1, introspect.ErrInactive) {
				t.Errorf("removed token after the event: err = %v, want ErrInactive at once", err1)
			}
			if err2 != nil {
				t.Errorf("the user's other token after the event: err = %v, want it still accepted", err2)
			}
			if n := as.Answered(); n != 3 {
				t.Errorf("after the event: the server answered %d times, want 3: only the removed token was asked about again", n)
			}

			// Whereas an unsigned event changes nothing, and user.locked takes all.
			as.Revoke(t2)
			if got := k.post(t, ev(typ, "user", "alice", `{"tokenId":"281474976710002"}`), ""); got != 401 {
				t.Fatalf("unsigned: %d", got)
			}
			if _, err := client.Introspect(ctx, t2); err != nil {
				t.Errorf("after an unsigned event: %v, want the cached answer", err)
			}
			if got := k.signed(t, ev("user.locked", "user", "alice", "")); got != 200 {
				t.Fatalf("user.locked: %d", got)
			}
			if _, err := client.Introspect(ctx, t2); !errors.Is(err, introspect.ErrInactive) {
				t.Errorf("after user.locked: %v, want ErrInactive", err)
			}
		})
	}
}

// TestGrantChangedInvalidatesTheUser: ZITADEL's user.grant.changed names
// only the grant; the user comes from user.grant.added, seen before.
func TestGrantChangedInvalidatesTheUser(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	client := newClient(t, as)
	h, err := events.NewHandler(string(key), client, quiet())
	if err != nil {
		t.Fatal(err)
	}
	k := newHook(t, h)
	if got := k.signed(t, ev("user.grant.added", "usergrant", "g1", `{"userId":"bob","projectId":"p1","roleKeys":["admin"]}`)); got != 200 {
		t.Fatal(got)
	}
	tok := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{"p1"}, Roles: map[string]map[string]string{"admin": {"o": "d"}}})
	ctx := context.Background()
	if r, err := client.Introspect(ctx, tok); err != nil || !r.Roles().Has("admin") {
		t.Fatalf("before: %v", err)
	}
	as.Revoke(tok) // stands in for the answer without the role
	if got := k.signed(t, ev("user.grant.changed", "usergrant", "g1", `{"roleKeys":[]}`)); got != 200 {
		t.Fatal(got)
	}
	if _, err := client.Introspect(ctx, tok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("after user.grant.changed: %v, want the server asked again", err)
	}
}

package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

func TestDelegatedTokens(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	own := s.mint(fakeas.Token{Subject: "alice"})
	delegated := s.mint(fakeas.Token{Subject: "alice", Extra: map[string]any{"act": map[string]any{"sub": "robot", "client_id": "robot@" + project}}})
	route := s.mw.Require(middleware.NotDelegated())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		if c.Delegated() {
			t.Error("a delegated token reached a NotDelegated route")
		}
	}))
	odd := func(act any) string { return s.mint(fakeas.Token{Subject: "alice", Extra: map[string]any{"act": act}}) }
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"own token", own, 200},
		{"act null", odd(nil), 200},
		{"delegated token", delegated, 403},
		// RFC 8693 does not require the actor to name a subject: any act is delegation.
		{"act with a client ID only", odd(map[string]any{"client_id": "robot"}), 403},
		{"act with an issuer only", odd(map[string]any{"iss": "https://other.example"}), 403},
		{"act with a numeric sub", odd(map[string]any{"sub": 42}), 403},
		{"act with an empty sub", odd(map[string]any{"sub": ""}), 403},
		{"act a string", odd("robot"), 403},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		rec := httptest.NewRecorder()
		route.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.want)
		}
	}

	// The actor is in the claims; a guard-wide validator refuses with 401.
	ctx, e := s.mw.Check(context.Background(), delegated)
	if e != nil {
		t.Fatal(e)
	}
	c, _ := middleware.ClaimsFromContext(ctx)
	if a, ok := c.Actor(); !ok || a.Subject != "robot" || a.ClientID != "robot@"+project {
		t.Errorf("Actor() = %+v, %v; want robot", a, ok)
	}
	strict := newStack(t, project, middleware.WithValidator(func(_ context.Context, c *middleware.Claims) error {
		if c.Delegated() {
			return errors.New("delegated tokens are not accepted")
		}
		return nil
	}))
	tok := strict.mint(fakeas.Token{Extra: map[string]any{"act": map[string]any{"sub": "robot"}}})
	if rec := strict.do("/api", "Bearer "+tok); rec.Code != http.StatusUnauthorized {
		t.Errorf("validator refusing delegation: %d, want 401", rec.Code)
	}
}

package tokenguard_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/devserver"
)

// A role removed in ZITADEL does not come back every max TTL for a JWT that
// carries it: once the server has answered about the token, the next request
// after that answer expires asks the server, never the JWT's old role claim
// (found in review 12).
func TestRemovedRoleDoesNotComeBackAfterTheMaxTTL(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	if err := w.srv.SetRoleAssertion(w.project.ID, true); err != nil {
		t.Fatal(err)
	}
	tok := w.mint(t, w.admin, devserver.TokenOptions{})
	if rec := w.get("/api/admin", tok); rec.Code != http.StatusOK {
		t.Fatalf("admin = %d", rec.Code)
	}
	w.confirmed(t, tok)
	if err := w.srv.SetRoles(w.admin.UserID, w.project.ID, "reader"); err != nil {
		t.Fatal(err)
	}
	for cycle := range 3 {
		w.clock.Advance(localMaxTTL + time.Second)
		if rec := w.get("/api/admin", tok); rec.Code != http.StatusForbidden {
			t.Fatalf("cycle %d: /api/admin with the role removed = %d, want 403 (the server's answer)", cycle, rec.Code)
		}
	}
}

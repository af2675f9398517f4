package devserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/events"
)

// received is one event a target got, as ZITADEL's body names its parts.
type received struct {
	typ, aggregateType, aggregateID, editor string
	payload                                 map[string]any // nil: null
}

// eventSink is an event target that verifies each event's signature and
// keeps what it received, in order.
type eventSink struct {
	mu   sync.Mutex
	key  []byte
	got  []received
	errs []error
}

func newEventSink(t *testing.T, srv *devserver.Server) *eventSink {
	t.Helper()
	s := &eventSink{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := events.Verify(body, r.Header.Get("ZITADEL-Signature"), [][]byte{s.key}, time.Now(), time.Minute); err != nil {
			s.errs = append(s.errs, err)
			return
		}
		var b struct {
			AggregateType string          `json:"aggregateType"`
			AggregateID   string          `json:"aggregateID"`
			EventType     string          `json:"event_type"`
			UserID        string          `json:"userID"`
			Payload       json.RawMessage `json:"event_payload"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			s.errs = append(s.errs, err)
			return
		}
		if _, err := events.ParseEvent(body); err != nil {
			s.errs = append(s.errs, err)
			return
		}
		e := received{typ: b.EventType, aggregateType: b.AggregateType, aggregateID: b.AggregateID, editor: b.UserID}
		if err := json.Unmarshal(b.Payload, &e.payload); err != nil {
			s.errs = append(s.errs, err)
		}
		s.got = append(s.got, e)
	}))
	t.Cleanup(hook.Close)
	key := srv.AddEventTarget(hook.URL)
	s.mu.Lock()
	s.key = []byte(key)
	s.mu.Unlock()
	return s
}

// take returns the events received since the last take.
func (s *eventSink) take(t *testing.T) []received {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		t.Errorf("event target: %v", err)
	}
	got := s.got
	s.got, s.errs = nil, nil
	return got
}

// TestEventTargetsGetZitadelEvents checks the events the server sends, one
// call at a time: type, aggregate, editor and payload as ZITADEL's own
// events have them, signed with the target's key.
func TestEventTargetsGetZitadelEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sink := newEventSink(t, w.srv)
	other := w.srv.CreateProject("Other API")
	one := func(what string) received {
		t.Helper()
		got := sink.take(t)
		if len(got) != 1 {
			t.Fatalf("%s: %d events, want 1: %+v", what, len(got), got)
		}
		return got[0]
	}

	bob, err := w.srv.CreateServiceUser("bob", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	added := one("CreateServiceUser with a grant")
	grant := w.srv.GrantID(bob.UserID, w.project.ID)
	if grant == "" || grant == bob.UserID {
		t.Fatalf("GrantID = %q, want the grant's own ID", grant)
	}
	admin := added.editor
	if admin == "" || admin == bob.UserID {
		t.Errorf("user.grant.added editor %q: want the administrator, not the user the grant is for", admin)
	}
	want := received{"user.grant.added", "usergrant", grant, admin,
		map[string]any{"userId": bob.UserID, "projectId": w.project.ID, "roleKeys": []any{"admin"}}}
	if !equalEvent(added, want) {
		t.Errorf("CreateServiceUser: %+v, want %+v", added, want)
	}

	if err := w.srv.SetRoles(bob.UserID, w.project.ID, "reader"); err != nil {
		t.Fatal(err)
	}
	want = received{"user.grant.changed", "usergrant", grant, admin, map[string]any{"roleKeys": []any{"reader"}}}
	if got := one("SetRoles on an existing grant"); !equalEvent(got, want) {
		t.Errorf("SetRoles: %+v, want %+v", got, want)
	}
	if err := w.srv.SetRoles(bob.UserID, w.project.ID); err != nil {
		t.Fatal(err)
	}
	want = received{"user.grant.changed", "usergrant", grant, admin, map[string]any{"roleKeys": []any{}}}
	if got := one("SetRoles with no roles"); !equalEvent(got, want) {
		t.Errorf("SetRoles with no roles: %+v, want %+v (the grant stays, without roles)", got, want)
	}

	if err := w.srv.SetRoles(bob.UserID, other.ID, "viewer"); err != nil {
		t.Fatal(err)
	}
	grant2 := w.srv.GrantID(bob.UserID, other.ID)
	want = received{"user.grant.added", "usergrant", grant2, admin,
		map[string]any{"userId": bob.UserID, "projectId": other.ID, "roleKeys": []any{"viewer"}}}
	if got := one("SetRoles in a project without a grant"); grant2 == "" || grant2 == grant || !equalEvent(got, want) {
		t.Errorf("SetRoles in a new project: %+v (grant %q), want %+v", got, grant2, want)
	}

	if err := w.srv.RemoveGrant(bob.UserID, other.ID); err != nil {
		t.Fatal(err)
	}
	want = received{"user.grant.removed", "usergrant", grant2, admin, nil}
	if got := one("RemoveGrant"); !equalEvent(got, want) {
		t.Errorf("RemoveGrant: %+v, want %+v (ZITADEL's removed event names neither user nor project)", got, want)
	}
	if id := w.srv.GrantID(bob.UserID, other.ID); id != "" {
		t.Errorf("GrantID after RemoveGrant = %q, want none", id)
	}
	if err := w.srv.RemoveGrant(bob.UserID, other.ID); err == nil {
		t.Error("RemoveGrant of a grant already removed: no error")
	}
	if err := w.srv.RemoveGrant("nobody", w.project.ID); err == nil {
		t.Error("RemoveGrant of an unknown user: no error")
	}
	if got := sink.take(t); len(got) != 0 {
		t.Errorf("failed RemoveGrant calls sent events: %+v", got)
	}

	if err := w.srv.LockUser(bob.UserID, true); err != nil {
		t.Fatal(err)
	}
	want = received{"user.locked", "user", bob.UserID, admin, map[string]any{}}
	if got := one("LockUser"); !equalEvent(got, want) {
		t.Errorf("LockUser: %+v, want %+v", got, want)
	}

	tok, err := w.srv.MintToken(w.reader.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	got := one("Revoke")
	if got.typ != "user.token.removed" || got.aggregateType != "user" || got.aggregateID != w.reader.UserID || got.editor != w.reader.UserID {
		t.Errorf("Revoke: %+v, want user.token.removed on the token's user, by its holder", got)
	}
	if id, _ := got.payload["tokenId"].(string); id == "" {
		t.Errorf("Revoke: payload %v has no tokenId", got.payload)
	}
}

// TestRoleChangesTakeEffect checks that SetRoles and RemoveGrant change what
// introspection says.
func TestRoleChangesTakeEffect(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	roles := func() []string {
		t.Helper()
		tok, err := w.srv.MintToken(w.admin.UserID, devserver.TokenOptions{ProjectIDs: []string{w.project.ID}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.client.Introspect(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		names := r.RolesFor(w.project.ID).Names()
		slices.Sort(names)
		return names
	}
	if got := roles(); !slices.Equal(got, []string{"admin", "reader"}) {
		t.Fatalf("before: %v", got)
	}
	if err := w.srv.SetRoles(w.admin.UserID, w.project.ID, "reader"); err != nil {
		t.Fatal(err)
	}
	if got := roles(); !slices.Equal(got, []string{"reader"}) {
		t.Errorf("after SetRoles(reader): %v", got)
	}
	if err := w.srv.RemoveGrant(w.admin.UserID, w.project.ID); err != nil {
		t.Fatal(err)
	}
	if got := roles(); len(got) != 0 {
		t.Errorf("after RemoveGrant: %v, want no roles", got)
	}
}

func equalEvent(a, b received) bool {
	if a.typ != b.typ || a.aggregateType != b.aggregateType || a.aggregateID != b.aggregateID || a.editor != b.editor {
		return false
	}
	x, _ := json.Marshal(a.payload)
	y, _ := json.Marshal(b.payload)
	return string(x) == string(y)
}

package events_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/events"
)

// recorder records invalidations as "subject:<id>" and "token:<jti>".
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }

func (r *recorder) InvalidateSubject(s string) { r.add("subject:" + s) }
func (r *recorder) InvalidateTokenID(s string) { r.add("token:" + s) }

func (r *recorder) got() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.calls) }

// subjectsOnly is an Invalidator without InvalidateTokenID.
type subjectsOnly struct{ r *recorder }

func (s subjectsOnly) InvalidateSubject(sub string) { s.r.InvalidateSubject(sub) }

// ev builds an event body as ZITADEL's execution sends it; payload is raw
// JSON, or "" for none. userID is ZITADEL's creator of the event, never its
// subject: "admin" everywhere, so that reading it would show.
func ev(typ, aggType, aggID, payload string) []byte {
	m := map[string]any{"aggregateID": aggID, "aggregateType": aggType, "resourceOwner": "org1", "instanceID": "i1",
		"version": "v1", "sequence": 7, "event_type": typ, "created_at": "2026-12-01T22:00:00.123456789Z", "userID": "admin"}
	if payload != "" {
		m["event_payload"] = json.RawMessage(payload)
	}
	b, _ := json.Marshal(m)
	return b
}

// b64 is ev with the payload base64-encoded, as ZITADEL versions whose
// event_payload is a []byte send it.
func b64(typ, aggType, aggID, payload string) []byte {
	enc, _ := json.Marshal([]byte(payload))
	return ev(typ, aggType, aggID, string(enc))
}

// hook is a Handler behind a real HTTP server.
type hook struct {
	srv    *httptest.Server
	client *http.Client
}

func newHook(t testing.TB, h http.Handler) *hook {
	t.Helper()
	srv := httptest.NewServer(h)
	tr := &http.Transport{}
	t.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &hook{srv: srv, client: &http.Client{Transport: tr}}
}

// post sends body with the given ZITADEL-Signature header ("" for none).
func (k *hook) post(t testing.TB, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, k.srv.URL+"/zitadel/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("ZITADEL-Signature", sig)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (k *hook) signed(t testing.TB, body []byte) int {
	return k.post(t, body, events.Sign(body, time.Now(), key))
}

func quiet() events.Option { return events.WithLogger(slog.New(slog.DiscardHandler)) }

func TestHandlerEvents(t *testing.T) {
	t.Parallel()
	grantAdded := ev("user.grant.added", "usergrant", "g1", `{"userId":"u2","projectId":"p1","roleKeys":["admin"]}`)
	oidcAdded := ev("oidc_session.added", "oidc_session", "V2_s1", `{"userID":"u3","sessionID":"ls1","clientID":"c1","audience":["p1"]}`)
	resolveTo := func(sub string, err error) events.Resolver {
		return func(_ context.Context, e *events.Event) (string, error) { return sub, err }
	}
	tests := []struct {
		name     string
		before   [][]byte // signed events sent first
		body     []byte
		sig      string // "" signs body with key; "-" sends none
		subjOnly bool   // the Invalidator has no InvalidateTokenID
		resolver events.Resolver
		status   int
		want     []string
	}{
		{"user.locked", nil, ev("user.locked", "user", "u1", ""), "", false, nil, 200, []string{"subject:u1"}},
		{"user.deactivated", nil, ev("user.deactivated", "user", "u1", "null"), "", false, nil, 200, []string{"subject:u1"}},
		{"user.removed", nil, ev("user.removed", "user", "u1", ""), "", false, nil, 200, []string{"subject:u1"}},
		// Sign-out and a removed refresh token deactivate access tokens
		// (ZITADEL's TokenView): the user, whose tokens it cannot tell
		// apart here. The refresh token's tokenId is not an access token's
		// jti.
		{"user.human.signed.out", nil, ev("user.human.signed.out", "user", "u1", `{"userAgentID":"ua1"}`), "", false, nil, 200, []string{"subject:u1"}},
		{"user.signed.out", nil, ev("user.signed.out", "user", "u1", `{"userAgentID":"ua1"}`), "", false, nil, 200, []string{"subject:u1"}},
		{"user.human.refresh.token.removed", nil, ev("user.human.refresh.token.removed", "user", "u1", `{"tokenId":"rt1"}`), "", false, nil, 200, []string{"subject:u1"}},
		{"user.token.removed: that token only", nil, ev("user.token.removed", "user", "u1", `{"tokenId":"t1"}`), "", false, nil, 200, []string{"token:t1"}},
		{"user.pat.removed: that token only", nil, ev("user.pat.removed", "user", "u1", `{"tokenId":"p1"}`), "", false, nil, 200, []string{"token:p1"}},
		{"user.token.removed, base64 payload", nil, b64("user.token.removed", "user", "u1", `{"tokenId":"t1"}`), "", false, nil, 200, []string{"token:t1"}},
		{"user.token.removed without tokenId: the user", nil, ev("user.token.removed", "user", "u1", `{}`), "", false, nil, 200, []string{"subject:u1"}},
		{"user.token.removed, Invalidator without token IDs: the user", nil, ev("user.token.removed", "user", "u1", `{"tokenId":"t1"}`), "", true, nil, 200, []string{"subject:u1"}},
		{"user.token.removed, tokenId of another spelling", nil, ev("user.token.removed", "user", "u1", `{"TokenId":"t1","tokenID":"t1"}`), "", false, nil, 200, []string{"subject:u1"}},
		{"user.grant.added alone", nil, grantAdded, "", false, nil, 200, nil},
		{"user.grant.changed after added", [][]byte{grantAdded}, ev("user.grant.changed", "usergrant", "g1", `{"roleKeys":[]}`), "", false, nil, 200, []string{"subject:u2"}},
		{"user.grant.cascade.changed after added", [][]byte{grantAdded}, ev("user.grant.cascade.changed", "usergrant", "g1", `{"roleKeys":["x"]}`), "", false, nil, 200, []string{"subject:u2"}},
		{"user.grant.removed after added", [][]byte{grantAdded}, ev("user.grant.removed", "usergrant", "g1", ""), "", false, nil, 200, []string{"subject:u2"}},
		{"user.grant.cascade.removed after added", [][]byte{grantAdded}, b64("user.grant.cascade.removed", "usergrant", "g1", "null"), "", false, nil, 200, []string{"subject:u2"}},
		{"user.grant.deactivated after added", [][]byte{grantAdded}, ev("user.grant.deactivated", "usergrant", "g1", ""), "", false, nil, 200, []string{"subject:u2"}},
		{"user.grant.changed of another grant", [][]byte{grantAdded}, ev("user.grant.changed", "usergrant", "g2", `{"roleKeys":[]}`), "", false, nil, 200, nil},
		{"user.grant.changed, unknown grant, resolver", nil, ev("user.grant.changed", "usergrant", "g9", `{"roleKeys":[]}`), "", false, resolveTo("u7", nil), 200, []string{"subject:u7"}},
		{"user.grant.changed, unknown grant, resolver fails", nil, ev("user.grant.changed", "usergrant", "g9", `{"roleKeys":[]}`), "", false, resolveTo("", errors.New("zitadel down")), 503, nil},
		{"user.grant.changed, known grant: no resolver call", [][]byte{grantAdded}, ev("user.grant.changed", "usergrant", "g1", `{}`), "", false, resolveTo("", errors.New("must not be called")), 200, []string{"subject:u2"}},
		{"a forged userId in a grant payload is not read", nil, ev("user.grant.removed", "usergrant", "g9", `{"userId":"victim"}`), "", false, nil, 200, nil},
		{"oidc_session.access_token.revoked after added", [][]byte{oidcAdded}, ev("oidc_session.access_token.revoked", "oidc_session", "V2_s1", `{}`), "", false, nil, 200, []string{"subject:u3"}},
		{"oidc_session.refresh_token.revoked after added: its access token ends too", [][]byte{oidcAdded}, ev("oidc_session.refresh_token.revoked", "oidc_session", "V2_s1", ""), "", false, nil, 200, []string{"subject:u3"}},
		{"session.terminated after oidc_session.added", [][]byte{oidcAdded}, ev("session.terminated", "session", "ls1", `{"triggerOrigin":"x"}`), "", false, nil, 200, []string{"subject:u3"}},
		{"session.terminated, unknown session", [][]byte{oidcAdded}, ev("session.terminated", "session", "ls2", `{}`), "", false, nil, 200, nil},
		{"oidc_session.access_token.revoked, unknown, resolver", nil, ev("oidc_session.access_token.revoked", "oidc_session", "V2_s9", ""), "", false, resolveTo("u8", nil), 200, []string{"subject:u8"}},
		{"project.removed: no user", nil, ev("project.removed", "project", "p1", ""), "", false, nil, 200, nil},
		{"project.deactivated: no user", nil, ev("project.deactivated", "project", "p1", ""), "", false, nil, 200, nil},
		{"org.deactivated: no user", nil, ev("org.deactivated", "org", "o1", "{}"), "", false, nil, 200, nil},
		{"org.removed: no user", nil, ev("org.removed", "org", "o1", ""), "", false, nil, 200, nil},
		{"org.removed, resolver acts itself", nil, ev("org.removed", "org", "o1", ""), "", false, resolveTo("", nil), 200, nil},
		// ZITADEL ends the tokens of an application, and of a whole
		// instance, with these (its token projection); they name no user.
		{"project.application.deactivated: the resolver", nil, ev("project.application.deactivated", "project", "p1", `{"appId":"a1"}`), "", false, resolveTo("u7", nil), 200, []string{"subject:u7"}},
		{"project.application.removed: the resolver", nil, ev("project.application.removed", "project", "p1", `{"appId":"a1","name":"api"}`), "", false, resolveTo("u7", nil), 200, []string{"subject:u7"}},
		{"instance.removed: the resolver", nil, ev("instance.removed", "instance", "i1", ""), "", false, resolveTo("u7", nil), 200, []string{"subject:u7"}},
		{"project.application.removed: no user", nil, ev("project.application.removed", "project", "p1", `{"appId":"a1"}`), "", false, nil, 200, nil},
		{"event that ends no access", nil, ev("user.human.added", "user", "u3", `{"userName":"x"}`), "", false, resolveTo("", errors.New("must not be called")), 200, nil},
		{"made-up event type", nil, ev("user.personal.access.token.removed", "user", "u1", `{"tokenId":"t1"}`), "", false, nil, 200, nil},

		{"X- header accepted", nil, ev("user.locked", "user", "u1", ""), "x", false, nil, 200, []string{"subject:u1"}},
		{"unsigned", nil, ev("user.locked", "user", "u1", ""), "-", false, nil, 401, nil},
		{"badly signed", nil, ev("user.locked", "user", "u1", ""), events.Sign(ev("user.locked", "user", "u1", ""), time.Now(), other), false, nil, 401, nil},
		{"signature of another body", nil, ev("user.locked", "user", "u1", ""), events.Sign(ev("user.locked", "user", "u2", ""), time.Now(), key), false, nil, 401, nil},
		{"stale", nil, ev("user.locked", "user", "u1", ""), events.Sign(ev("user.locked", "user", "u1", ""), time.Now().Add(-time.Hour), key), false, nil, 401, nil},
		{"malformed JSON, signed", nil, []byte("{"), "", false, nil, 400, nil},
		{"payload not base64, signed", nil, []byte(`{"event_type":"user.token.removed","aggregateID":"u1","event_payload":"%%"}`), "", false, nil, 400, nil},
		{"oversized", nil, []byte(`{"event_type":"user.locked","aggregateID":"u1","x":"` + strings.Repeat("x", events.MaxBodySize) + `"}`), "", false, nil, 413, nil},
		{"no aggregate ID", nil, ev("user.locked", "user", "", ""), "", false, nil, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			var inv events.Invalidator = rec
			if tt.subjOnly {
				inv = subjectsOnly{rec}
			}
			opts := []events.Option{quiet()}
			if tt.resolver != nil {
				opts = append(opts, events.WithResolver(tt.resolver))
			}
			h, err := events.NewHandler(string(key), inv, opts...)
			if err != nil {
				t.Fatal(err)
			}
			k := newHook(t, h)
			for _, b := range tt.before {
				if got := k.signed(t, b); got != 200 {
					t.Fatalf("setup event %s: %d", b, got)
				}
			}
			var got int
			switch tt.sig {
			case "":
				got = k.signed(t, tt.body)
			case "-":
				got = k.post(t, tt.body, "")
			case "x":
				req, _ := http.NewRequest(http.MethodPost, k.srv.URL, bytes.NewReader(tt.body))
				req.Header.Set("X-ZITADEL-Signature", events.Sign(tt.body, time.Now(), key))
				resp, err := k.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got = resp.StatusCode
			default:
				got = k.post(t, tt.body, tt.sig)
			}
			if got != tt.status {
				t.Errorf("POST: %d, want %d", got, tt.status)
			}
			if calls := rec.got(); !slices.Equal(calls, tt.want) {
				t.Errorf("invalidated %q, want %q", calls, tt.want)
			}
		})
	}
}

func TestResolverSeesTheEvent(t *testing.T) {
	t.Parallel()
	var seen []string
	var mu sync.Mutex
	h, err := events.NewHandler(string(key), &recorder{}, quiet(), events.WithResolver(func(ctx context.Context, e *events.Event) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %s %s %s %v", e.EventType, e.AggregateType, e.AggregateID, e.ResourceOwner, ctx.Err()))
		return "", nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	k := newHook(t, h)
	_ = k.signed(t, ev("project.removed", "project", "p1", ""))
	_ = k.signed(t, ev("user.grant.removed", "usergrant", "g1", ""))
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"project.removed project p1 org1 <nil>", "user.grant.removed usergrant g1 org1 <nil>"}; !slices.Equal(seen, want) {
		t.Errorf("resolver saw %q, want %q", seen, want)
	}
}

func TestNewHandlerRejects(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func() (*events.Handler, error){
		"empty key":         func() (*events.Handler, error) { return events.NewHandler("", &recorder{}) },
		"nil Invalidator":   func() (*events.Handler, error) { return events.NewHandler("k", nil) },
		"no keys":           func() (*events.Handler, error) { return events.NewHandlerKeys(nil, &recorder{}) },
		"one empty of keys": func() (*events.Handler, error) { return events.NewHandlerKeys([]string{"k", ""}, &recorder{}) },
	} {
		if _, err := f(); err == nil || !strings.HasPrefix(err.Error(), "events: ") {
			t.Errorf("NewHandler(%s) err = %v, want an events: error", name, err)
		}
	}
	h, err := events.NewHandler("k", &recorder{}, events.WithLogger(nil)) // nil: the default logger
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q, want 405 POST", rec.Code, rec.Header().Get("Allow"))
	}
}

// lines is a slog handler that keeps each record's message and attributes.
type lines struct {
	mu  sync.Mutex
	out []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.out = append(l.out, b.String())
	l.mu.Unlock()
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }
func (l *lines) get() []string                      { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.out) }

func TestUnsignedFloodLogsAFewLines(t *testing.T) {
	t.Parallel()
	logs := &lines{}
	rec := &recorder{}
	h, err := events.NewHandler(string(key), rec, events.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	k := newHook(t, h)
	b := ev("user.locked", "user", "u1", "")
	bad := []string{"", "t=1,v1=00", events.Sign(b, time.Now(), other), events.Sign(b, time.Now().Add(-time.Hour), key)}
	const n = 2000
	var sent atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; sent.Add(1) <= n; i++ {
				if got := k.post(t, b, bad[i%len(bad)]); got != 401 {
					t.Errorf("bad signature %q: %d, want 401", bad[i%len(bad)], got)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := logs.get()
	if max := 1 + int(elapsed/time.Second) + 1; len(got) > max || len(got) == 0 {
		t.Errorf("%d refusals in %v logged %d lines, want 1 to %d:\n%s", n, elapsed, len(got), max, strings.Join(got, "\n"))
	}
	for _, l := range got {
		if !strings.HasPrefix(l, "WARN tokenguard: event webhook refused reason=events: ") || !strings.Contains(l, " remote=127.0.0.1:") {
			t.Errorf("log line %q, want a Warn with the reason and the caller", l)
		}
	}
	if calls := rec.got(); len(calls) != 0 {
		t.Errorf("refused requests invalidated %q", calls)
	}
	if code := k.signed(t, b); code != 200 || len(rec.got()) != 1 {
		t.Errorf("a signed event after the flood: %d, %q", code, rec.got())
	}
}

func TestRefusalsAreCountedInTheNextLine(t *testing.T) {
	t.Parallel()
	logs := &lines{}
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	h, err := events.NewHandler(string(key), &recorder{}, events.WithLogger(slog.New(logs)),
		events.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	post := func(sig string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		req.Header.Set("ZITADEL-Signature", sig)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for range 100 {
		post("t=1,v1=00")
	}
	clock.Add(int64(999 * time.Millisecond))
	post("")
	if got := logs.get(); len(got) != 1 || !strings.Contains(got[0], "suppressed=0") {
		t.Fatalf("101 refusals within a second: %q, want one line", got)
	}
	clock.Add(int64(time.Millisecond))
	post("")
	got := logs.get()
	if len(got) != 2 || !strings.Contains(got[1], "reason=events: no signature") || !strings.HasSuffix(got[1], "suppressed=100") {
		t.Errorf("a refusal a second later: %q, want a second line counting the 100 left out", got)
	}
	// Oversized bodies are refused before any signature check, and counted too.
	clock.Add(int64(time.Second))
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", events.MaxBodySize+1)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := logs.get(); w.Code != 413 || len(got) != 3 || !strings.Contains(got[2], "reason=body too large") {
		t.Errorf("oversized: %d, %q", w.Code, got)
	}
}

func TestUnresolvedEventsAreLoggedRateLimited(t *testing.T) {
	t.Parallel()
	logs := &lines{}
	h, err := events.NewHandler(string(key), &recorder{}, events.WithLogger(slog.New(logs)), events.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // a project removal cascades to every grant of it
		b := ev("user.grant.cascade.removed", "usergrant", fmt.Sprint("g", i), "")
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		req.Header.Set("ZITADEL-Signature", events.Sign(b, now, key))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("unresolved grant event: %d, want 200", w.Code)
		}
	}
	if got := logs.get(); len(got) != 1 || !strings.Contains(got[0], "WARN tokenguard: event names no user") || !strings.Contains(got[0], "aggregate_id=g0") {
		t.Errorf("50 unresolved events logged %q, want one Warn", got)
	}
}

// FuzzHandler sends arbitrary bodies, correctly signed, through the
// Handler: it never panics, answers 400 exactly for what ParseEvent
// refuses, and invalidates only what the event itself names.
func FuzzHandler(f *testing.F) {
	f.Add(ev("user.token.removed", "user", "u1", `{"tokenId":"t1"}`))
	f.Add(b64("user.pat.removed", "user", "u1", `{"tokenId":"t1"}`))
	f.Add(ev("user.locked", "user", "u1", ""))
	f.Add(ev("user.grant.changed", "usergrant", "g1", `{"roleKeys":["a"]}`))
	f.Add(ev("oidc_session.added", "oidc_session", "V2_1", `{"userID":"u","sessionID":"s"}`))
	f.Add([]byte(`{"event_type":"user.token.removed","event_payload":"eyJ0b2tlbklkIjoxfQ=="}`))
	f.Add([]byte(`{"event_type":"user.locked","aggregateID":"u","event_payload":" null "}`))
	f.Add([]byte(`{"event_type":"x","event_payload":"` + base64.StdEncoding.EncodeToString([]byte(" {} ")) + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := &recorder{}
		h, err := events.NewHandler(string(key), rec, quiet(), events.WithClock(func() time.Time { return now }))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		req.Header.Set("ZITADEL-Signature", events.Sign(b, now, key))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		e, perr := events.ParseEvent(b)
		switch {
		case len(b) > events.MaxBodySize:
			if w.Code != 413 {
				t.Fatalf("oversized: %d", w.Code)
			}
			return
		case perr != nil:
			if w.Code != 400 || len(rec.got()) != 0 {
				t.Fatalf("ParseEvent refused %q (%v) but the Handler answered %d and invalidated %q", b, perr, w.Code, rec.got())
			}
			return
		case w.Code != 200:
			t.Fatalf("ParseEvent accepted %q but the Handler answered %d", b, w.Code)
		}
		if e.Payload != nil && (!json.Valid(e.Payload) || e.Payload[0] != '{') {
			t.Fatalf("ParseEvent(%q).Payload = %q, not a JSON object", b, e.Payload)
		}
		// One event on a fresh Handler: only the user or token it names.
		var want []string
		switch {
		case e.TokenID() != "":
			want = []string{"token:" + e.TokenID()}
		case e.Subject() != "":
			want = []string{"subject:" + e.Subject()}
		}
		if got := rec.got(); !slices.Equal(got, want) {
			t.Fatalf("event %q invalidated %q, want %q", b, got, want)
		}
	})
}

// An event type the handler does not know is logged (rate-limited), not
// silently dropped: the operator subscribed to it for a reason.
func TestUnknownEventTypesAreLogged(t *testing.T) {
	t.Parallel()
	logs := &lines{}
	rec := &recorder{}
	h, err := events.NewHandler(string(key), rec, events.WithLogger(slog.New(logs)), events.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b := ev("project.role.removed", "project", "p1", `{"key":"admin"}`)
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		req.Header.Set("ZITADEL-Signature", events.Sign(b, now, key))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("unknown event type: %d, want 200", w.Code)
		}
	}
	if got := logs.get(); len(got) != 1 || !strings.Contains(got[0], "event type not handled") || !strings.Contains(got[0], "project.role.removed") {
		t.Errorf("20 events of an unknown type logged %q, want one Warn naming the type", got)
	}
	if len(rec.got()) != 0 {
		t.Errorf("an unknown event invalidated %q", rec.got())
	}
}

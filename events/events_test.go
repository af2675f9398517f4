package events_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/events"
)

var (
	key   = []byte("signing-key-1")
	other = []byte("signing-key-2")
	now   = time.Unix(1_800_000_000, 0)
	body  = []byte(`{"aggregateID":"u1","aggregateType":"user","event_type":"user.locked","sequence":3,"event_payload":{}}`)
)

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   []byte
		header string
		ok     bool
	}{
		{"good", body, events.Sign(body, now, key), true},
		{"rotation: second key signs", body, events.Sign(body, now, other, key), true},
		{"other key", body, events.Sign(body, now, other), false},
		{"tampered body", []byte(strings.Replace(string(body), "u1", "u2", 1)), events.Sign(body, now, key), false},
		{"stale", body, events.Sign(body, now.Add(-6*time.Minute), key), false},
		{"from the future", body, events.Sign(body, now.Add(6*time.Minute), key), false},
		{"no timestamp", body, "v1=" + strings.Split(events.Sign(body, now, key), "v1=")[1], false},
		{"no v1", body, "t=1800000000", false},
		{"empty", body, "", false},
		{"garbage", body, "t=x,v1=zz", false},
	}
	for _, tt := range tests {
		err := events.Verify(tt.body, tt.header, [][]byte{key}, now, events.DefaultTolerance)
		if (err == nil) != tt.ok {
			t.Errorf("Verify(%s) err = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

type recorder struct {
	mu   sync.Mutex
	subs []string
}

func (r *recorder) InvalidateSubject(s string) {
	r.mu.Lock()
	r.subs = append(r.subs, s)
	r.mu.Unlock()
}

func TestHandler(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	h, err := events.NewHandler(string(key), rec, events.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	post := func(b []byte, sig, header string) int {
		req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(string(b)))
		if sig != "" {
			req.Header.Set(header, sig)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	grant := []byte(`{"aggregateID":"g1","aggregateType":"usergrant","event_type":"user.grant.removed","event_payload":{"userId":"u2"}}`)
	ignored := []byte(`{"aggregateID":"u3","aggregateType":"user","event_type":"user.human.added","event_payload":{}}`)
	tests := []struct {
		name   string
		body   []byte
		sig    string
		header string
		want   int
	}{
		{"user.locked", body, events.Sign(body, now, key), "ZITADEL-Signature", 200},
		{"X- header accepted", body, events.Sign(body, now, key), "X-ZITADEL-Signature", 200},
		{"grant removed", grant, events.Sign(grant, now, key), "ZITADEL-Signature", 200},
		{"event that ends no access", ignored, events.Sign(ignored, now, key), "ZITADEL-Signature", 200},
		{"unsigned", body, "", "", 401},
		{"badly signed", body, events.Sign(body, now, other), "ZITADEL-Signature", 401},
		{"stale", body, events.Sign(body, now.Add(-time.Hour), key), "ZITADEL-Signature", 401},
		{"malformed JSON, signed", []byte("{"), events.Sign([]byte("{"), now, key), "ZITADEL-Signature", 400},
		{"oversized", []byte(strings.Repeat("x", events.MaxBodySize+1)), "t=1", "ZITADEL-Signature", 413},
	}
	for _, tt := range tests {
		if got := post(tt.body, tt.sig, tt.header); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if strings.Join(rec.subs, ",") != "u1,u1,u2" {
		t.Errorf("invalidated %v, want [u1 u1 u2]: only good signatures, only access-ending events", rec.subs)
	}
	req := httptest.NewRequest(http.MethodGet, "/events", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", w.Code)
	}
	if _, err := events.NewHandler("", rec); err == nil {
		t.Errorf("NewHandler with an empty key succeeded")
	}
}

func TestEventSubject(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{
		"user.locked": "u1", "user.deactivated": "u1", "user.removed": "u1", "user.token.removed": "u1",
		"user.personal.access.token.removed": "u1", "user.grant.removed": "u9", "session.terminated": "u9",
		"user.human.added": "", "org.added": "",
	} {
		e := events.Event{AggregateID: "u1", EventType: typ, Payload: []byte(`{"userId":"u9"}`)}
		if got := e.Subject(); got != want {
			t.Errorf("Subject(%s) = %q, want %q", typ, got, want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(body, events.Sign(body, now, key))
	f.Add(body, "t=1800000000,v1=00,v1=zz,,=")
	f.Add([]byte("x"), "t=1800000000,t=1,v1=ab")
	f.Fuzz(func(t *testing.T, b []byte, header string) {
		if events.Verify(b, header, [][]byte{key}, now, events.DefaultTolerance) != nil {
			return
		}
		// Accepted: the header must carry the right MAC for the timestamp
		// that was checked (the last t=), or it was a forgery.
		var ts string
		for _, part := range strings.Split(header, ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && k == "t" {
				ts = v
			}
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(ts + "."))
		m.Write(b)
		if !strings.Contains(strings.ToLower(header), "v1="+hex.EncodeToString(m.Sum(nil))) { // hex of either case is the same MAC
			t.Fatalf("Verify accepted %q for %q without its MAC", header, b)
		}
	})
}

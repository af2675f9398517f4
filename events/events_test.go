package events_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
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

func TestParseEvent(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"tokenId":"t1"}`))
	tests := []struct {
		name, body, payload string // payload "" means nil
		ok                  bool
	}{
		{"object payload", `{"event_type":"user.token.removed","event_payload":{"tokenId":"t1"}}`, `{"tokenId":"t1"}`, true},
		{"base64 payload, as ZITADEL's []byte field marshals", `{"event_type":"user.token.removed","event_payload":"` + b64 + `"}`, `{"tokenId":"t1"}`, true},
		{"null payload", `{"event_type":"user.locked","event_payload":null}`, "", true},
		{"no payload", `{"event_type":"user.locked"}`, "", true},
		{"base64 of null", `{"event_type":"user.locked","event_payload":"bnVsbA=="}`, "", true},
		{"created_at as ZITADEL formats it", `{"event_type":"user.locked","created_at":"2026-12-01T22:00:00.123456Z"}`, "", true},
		{"created_at in another format: kept, time left zero", `{"event_type":"user.locked","created_at":"1 Dec 2026"}`, "", true},
		{"created_at a number", `{"event_type":"user.locked","created_at":1800000000}`, "", true},
		{"payload an array", `{"event_type":"user.locked","event_payload":[1]}`, "", false},
		{"payload a number", `{"event_type":"user.locked","event_payload":1}`, "", false},
		{"payload a string, not base64", `{"event_type":"user.locked","event_payload":"{not base64}"}`, "", false},
		{"payload base64 of garbage", `{"event_type":"user.locked","event_payload":"` + base64.StdEncoding.EncodeToString([]byte("{x")) + `"}`, "", false},
		{"payload base64 of an array", `{"event_type":"user.locked","event_payload":"WzFd"}`, "", false},
		{"no event type", `{"aggregateID":"u1"}`, "", false},
		{"not JSON", `{`, "", false},
		{"event type a number", `{"event_type":1}`, "", false},
	}
	for _, tt := range tests {
		e, err := events.ParseEvent([]byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("ParseEvent(%s) err = %v, want ok %v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "events: ") {
				t.Errorf("ParseEvent(%s) err = %q, want the package prefix", tt.name, err)
			}
			continue
		}
		if e.EventType == "" {
			t.Errorf("ParseEvent(%s).EventType is empty", tt.name)
		}
		if want := strings.Contains(tt.body, `"created_at":"2026-`); e.CreatedAt.IsZero() == want {
			t.Errorf("ParseEvent(%s).CreatedAt = %v", tt.name, e.CreatedAt)
		}
		if string(e.Payload) != tt.payload {
			t.Errorf("ParseEvent(%s).Payload = %s, want %s", tt.name, e.Payload, tt.payload)
		}
	}
}

func TestEventSubjectAndTokenID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ, subject, tokenID string
	}{
		{"user.locked", "u1", ""},
		{"user.deactivated", "u1", ""},
		{"user.removed", "u1", ""},
		{"user.token.removed", "u1", "t1"},
		{"user.pat.removed", "u1", "t1"},
		{"user.human.signed.out", "u1", ""},
		{"user.signed.out", "u1", ""},
		{"user.human.refresh.token.removed", "u1", ""}, // its tokenId names a refresh token
		{"oidc_session.refresh_token.revoked", "", ""},
		// ZITADEL's grant and session events name no user in their payload
		// (the userId here is what a forger might hope is read).
		{"user.grant.changed", "", ""},
		{"user.grant.removed", "", ""},
		{"session.terminated", "", ""},
		{"oidc_session.access_token.revoked", "", ""},
		{"org.removed", "", ""},
		{"project.deactivated", "", ""},
		{"user.grant.added", "", ""},
		{"user.human.added", "", ""},
		{"user.personal.access.token.removed", "", ""}, // not a ZITADEL event type
	}
	for _, tt := range tests {
		e := events.Event{AggregateID: "u1", EventType: tt.typ, Payload: []byte(`{"userId":"u9","userID":"u9","tokenId":"t1"}`)}
		if got := e.Subject(); got != tt.subject {
			t.Errorf("Subject(%s) = %q, want %q", tt.typ, got, tt.subject)
		}
		if got := e.TokenID(); got != tt.tokenID {
			t.Errorf("TokenID(%s) = %q, want %q", tt.typ, got, tt.tokenID)
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

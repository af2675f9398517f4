// Package events receives ZITADEL Actions v2 event webhooks (targets of
// type webhook or async on event executions) and invalidates the cached
// decisions of users whose access ended: locked, deactivated or removed
// users, and removed tokens, sessions and grants.
//
//	h, err := events.NewHandler(signingKey, guard) // signingKey: from ZITADEL's CreateTarget
//	mux.Handle("POST /zitadel/events", h)
//
// With replicas sharing a cache that tells them about invalidations
// (module rediscache), passing the guard reaches every replica.
//
// # Caching
//
// Nothing is cached; each accepted event invalidates the subject at once.
//
// # Security
//
// Requests MUST carry a valid ZITADEL-Signature header (t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<raw body>">, as ZITADEL signs with the target's
// signing key; X-ZITADEL-Signature is accepted too). Unsigned, badly signed,
// stale (over 5 minutes apart from this clock by default) and oversized
// (over 64 KiB) requests are refused and change nothing. A Handler is safe
// for concurrent use.
package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults for a [Handler].
const (
	DefaultTolerance = 5 * time.Minute
	MaxBodySize      = 64 << 10
)

// Event types that end a user's access, by how their subject is found.
var (
	// userEvents have the user as their aggregate.
	userEvents = map[string]bool{
		"user.locked": true, "user.deactivated": true, "user.removed": true,
		"user.token.removed": true, "user.personal.access.token.removed": true,
	}
	// payloadUserEvents name the user in event_payload.userId (or userID).
	payloadUserEvents = map[string]bool{
		"user.grant.removed": true, "user.grant.cascade.removed": true, "user.grant.deactivated": true,
		"session.terminated": true,
	}
)

// Invalidator drops cached decisions for a subject; *tokenguard.Guard and
// *introspect.Client implement it.
type Invalidator interface {
	InvalidateSubject(subject string)
}

// InvalidatorFunc adapts a function to [Invalidator].
type InvalidatorFunc func(subject string)

// InvalidateSubject calls f(subject).
func (f InvalidatorFunc) InvalidateSubject(subject string) { f(subject) }

// Event is the part of a ZITADEL event payload the Handler reads.
type Event struct {
	AggregateID   string          `json:"aggregateID"`
	AggregateType string          `json:"aggregateType"`
	ResourceOwner string          `json:"resourceOwner"`
	InstanceID    string          `json:"instanceID"`
	Sequence      uint64          `json:"sequence"`
	EventType     string          `json:"event_type"`
	CreatedAt     time.Time       `json:"created_at"`
	Payload       json.RawMessage `json:"event_payload"`
}

// Subject returns the user whose access the event ends, or "" for events
// that end none.
func (e *Event) Subject() string {
	switch {
	case userEvents[e.EventType]:
		return e.AggregateID
	case payloadUserEvents[e.EventType]:
		var p struct {
			UserID  string `json:"userId"`
			UserID2 string `json:"userID"`
		}
		if json.Unmarshal(e.Payload, &p) == nil {
			if p.UserID != "" {
				return p.UserID
			}
			return p.UserID2
		}
	}
	return ""
}

// Option configures a [Handler].
type Option func(*Handler)

// WithTolerance sets how far a signature's timestamp may be from now.
// Default: [DefaultTolerance].
func WithTolerance(d time.Duration) Option { return func(h *Handler) { h.tolerance = d } }

// WithLogger sets where refused requests and invalidations are logged.
// Default: [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithClock sets the clock for the timestamp check. Default: [time.Now].
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// Handler is the webhook endpoint.
type Handler struct {
	keys      [][]byte
	inv       Invalidator
	tolerance time.Duration
	logger    *slog.Logger
	now       func() time.Time
}

// NewHandler returns a Handler that checks signatures with the target's
// signing key (more than one during a key rotation) and invalidates through
// inv.
func NewHandler(signingKey string, inv Invalidator, opts ...Option) (*Handler, error) {
	return NewHandlerKeys([]string{signingKey}, inv, opts...)
}

// NewHandlerKeys is NewHandler for several signing keys, any of which may
// sign.
func NewHandlerKeys(signingKeys []string, inv Invalidator, opts ...Option) (*Handler, error) {
	h := &Handler{inv: inv, tolerance: DefaultTolerance, logger: slog.Default(), now: time.Now}
	for _, k := range signingKeys {
		if k == "" {
			return nil, errors.New("events: empty signing key")
		}
		h.keys = append(h.keys, []byte(k))
	}
	if len(h.keys) == 0 || inv == nil {
		return nil, errors.New("events: a signing key and an Invalidator are required")
	}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// ServeHTTP verifies and applies one event: 200 when accepted (also for
// event types that end no access), 401 for a missing, bad or stale
// signature, 413 for a body over [MaxBodySize], 400 for a malformed event,
// 405 for other methods.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodySize+1))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if len(body) > MaxBodySize {
		h.logger.Warn("tokenguard: event webhook refused: body too large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("ZITADEL-Signature")
	if sig == "" {
		sig = r.Header.Get("X-ZITADEL-Signature")
	}
	if err := Verify(body, sig, h.keys, h.now(), h.tolerance); err != nil {
		h.logger.Warn("tokenguard: event webhook refused", "reason", err.Error())
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil || e.EventType == "" {
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if sub := e.Subject(); sub != "" {
		h.inv.InvalidateSubject(sub)
		h.logger.Info("tokenguard: invalidated cached decisions", "event", e.EventType, "subject", sub)
	}
	w.WriteHeader(http.StatusOK)
}

// Sign returns a ZITADEL-Signature header value for body at t, with one v1
// signature per key, as ZITADEL computes it.
func Sign(body []byte, t time.Time, keys ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, k := range keys {
		parts = append(parts, "v1="+hex.EncodeToString(mac(k, ts, body)))
	}
	return strings.Join(parts, ",")
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a ZITADEL-Signature header value: its timestamp within
// tolerance of now, and a v1 signature by one of keys over "<t>.<body>".
func Verify(body []byte, header string, keys [][]byte, now time.Time, tolerance time.Duration) error {
	if header == "" {
		return errors.New("no signature")
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("no timestamp in signature")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("signature timestamp outside tolerance")
	}
	for _, k := range keys {
		want := mac(k, ts, body)
		for _, s := range sigs {
			if hmac.Equal(s, want) {
				return nil
			}
		}
	}
	return errors.New("no valid v1 signature")
}

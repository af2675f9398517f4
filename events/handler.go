package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Invalidator drops cached decisions for a subject; *tokenguard.Guard and
// *introspect.Client implement it. Implementations must be safe for
// concurrent use.
type Invalidator interface {
	InvalidateSubject(subject string)
}

// TokenIDInvalidator is an [Invalidator] that can also drop the cached
// decisions of one token by its ID (the jti of its introspection answer);
// *tokenguard.Guard and *introspect.Client implement it. The Handler uses it
// for token-removed events when the Invalidator it was given implements it.
type TokenIDInvalidator interface {
	InvalidateTokenID(jti string)
}

// InvalidatorFunc adapts a function to [Invalidator].
type InvalidatorFunc func(subject string)

// InvalidateSubject calls f(subject).
func (f InvalidatorFunc) InvalidateSubject(subject string) { f(subject) }

// Handler is the webhook endpoint. It is safe for concurrent use.
type Handler struct {
	keys      [][]byte
	inv       Invalidator
	tokens    TokenIDInvalidator // inv, if it implements it
	resolve   Resolver
	tolerance time.Duration
	logger    *slog.Logger
	now       func() time.Time

	grants        memo // user grant ID -> user ID, from user.grant.added
	oidcSessions  memo // OIDC session ID -> user ID, from oidc_session.added
	loginSessions memo // session ID -> user ID, from oidc_session.added

	refusedLog    limiter // unauthenticated requests
	unresolvedLog limiter // events whose user is unknown, and malformed signed events
}

// NewHandler returns a Handler that checks signatures with the target's
// signing key and invalidates through inv.
func NewHandler(signingKey string, inv Invalidator, opts ...Option) (*Handler, error) {
	return NewHandlerKeys([]string{signingKey}, inv, opts...)
}

// NewHandlerKeys is NewHandler for several signing keys, any of which may
// sign (during a key rotation).
func NewHandlerKeys(signingKeys []string, inv Invalidator, opts ...Option) (*Handler, error) {
	h := &Handler{inv: inv, tolerance: DefaultTolerance, now: time.Now}
	for _, k := range signingKeys {
		if k == "" {
			return nil, errors.New("events: empty signing key")
		}
		h.keys = append(h.keys, []byte(k))
	}
	if len(h.keys) == 0 || inv == nil {
		return nil, errors.New("events: a signing key and an Invalidator are required")
	}
	h.tokens, _ = inv.(TokenIDInvalidator)
	for _, o := range opts {
		o(h)
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// errUnresolved is a failed [Resolver].
var errUnresolved = errors.New("events: resolver failed")

// ServeHTTP verifies and applies one event: 200 when accepted (also for
// events that end no access or whose user is unknown), 401 for a missing,
// bad or stale signature, 413 for a body over [MaxBodySize], 400 for a
// malformed event, 503 when the [Resolver] failed, 405 for other methods.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodySize+1))
	if err != nil {
		h.refused(r, "unreadable body")
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if len(body) > MaxBodySize {
		h.refused(r, "body too large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("ZITADEL-Signature")
	if sig == "" {
		sig = r.Header.Get("X-ZITADEL-Signature")
	}
	if err := Verify(body, sig, h.keys, h.now(), h.tolerance); err != nil {
		h.refused(r, err.Error())
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	e, err := ParseEvent(body)
	if err != nil {
		h.warn(&h.unresolvedLog, "tokenguard: signed event refused", "reason", err.Error())
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if err := h.apply(r.Context(), e); err != nil {
		http.Error(w, "event not applied", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// apply invalidates what e ends, and remembers what later events need.
func (h *Handler) apply(ctx context.Context, e *Event) error {
	id := e.AggregateID
	switch kinds[e.EventType] {
	case endsUser:
		h.invalidate(e, id)
	case endsToken:
		if jti := e.TokenID(); jti != "" && h.tokens != nil {
			h.tokens.InvalidateTokenID(jti)
			h.logger.Info("tokenguard: invalidated cached decisions", "event", e.EventType, "subject", id, "token_id", jti)
			return nil
		}
		h.invalidate(e, id) // no token ID, or no way to use it: the whole user
	case learnsGrant:
		h.grants.put(id, e.field("userId"))
	case learnsSessions:
		user := e.field("userID")
		h.oidcSessions.put(id, user)
		h.loginSessions.put(e.field("sessionID"), user)
	case endsGrant:
		return h.invalidateKnown(ctx, e, h.grants.get(id))
	case endsOIDC:
		return h.invalidateKnown(ctx, e, h.oidcSessions.get(id))
	case endsSession:
		return h.invalidateKnown(ctx, e, h.loginSessions.get(id))
	case endsUnscoped:
		return h.invalidateKnown(ctx, e, "")
	default: // a type this handler does not know: say so, change nothing
		h.warn(&h.unresolvedLog, "tokenguard: event type not handled; nothing invalidated (see events.WithResolver)",
			"event", e.EventType, "aggregate_type", e.AggregateType, "aggregate_id", e.AggregateID)
	}
	return nil
}

// invalidateKnown invalidates user, or asks the Resolver when user is "".
func (h *Handler) invalidateKnown(ctx context.Context, e *Event, user string) error {
	if user != "" {
		h.invalidate(e, user)
		return nil
	}
	if h.resolve == nil {
		h.warn(&h.unresolvedLog, "tokenguard: event names no user this handler knows; cached decisions stand until they expire (see events.WithResolver)",
			"event", e.EventType, "aggregate_type", e.AggregateType, "aggregate_id", e.AggregateID)
		return nil
	}
	user, err := h.resolve(ctx, e)
	if err != nil {
		h.warn(&h.unresolvedLog, "tokenguard: event resolver failed", "event", e.EventType, "aggregate_id", e.AggregateID, "err", err.Error())
		return errUnresolved
	}
	h.invalidate(e, user)
	return nil
}

func (h *Handler) invalidate(e *Event, subject string) {
	if subject == "" {
		return
	}
	h.inv.InvalidateSubject(subject)
	h.logger.Info("tokenguard: invalidated cached decisions", "event", e.EventType, "subject", subject)
}

// refused logs an unauthenticated request, rate-limited.
func (h *Handler) refused(r *http.Request, reason string) {
	h.warn(&h.refusedLog, "tokenguard: event webhook refused", "reason", reason, "remote", r.RemoteAddr)
}

// warn logs at Warn through l: at most one line a second, each with the
// number of lines left out since the one before.
func (h *Handler) warn(l *limiter, msg string, args ...any) {
	ok, n := l.allow(h.now())
	if !ok {
		return
	}
	h.logger.Warn(msg, append(args, "suppressed", n)...)
}

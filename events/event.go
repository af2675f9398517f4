package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is the part of a ZITADEL event execution's request body that the
// Handler reads.
type Event struct {
	AggregateID   string    `json:"aggregateID"`
	AggregateType string    `json:"aggregateType"`
	ResourceOwner string    `json:"resourceOwner"`
	InstanceID    string    `json:"instanceID"`
	Sequence      uint64    `json:"sequence"`
	EventType     string    `json:"event_type"`
	CreatedAt     time.Time `json:"created_at"`
	// Payload is the event's own JSON object, decoded from base64 when
	// ZITADEL sent it as a string; nil when there is none.
	Payload json.RawMessage `json:"event_payload"`
}

// ParseEvent decodes a request body as ZITADEL sends it. The event type is
// required; event_payload may be a JSON object, a base64 string of one (as
// some ZITADEL versions send it), null or absent.
//
// A created_at that is not an RFC 3339 time is left zero rather than
// refused: an event that ends access must not be dropped for its timestamp.
func ParseEvent(body []byte) (*Event, error) {
	type event Event // without methods
	var w struct {
		*event
		CreatedAt json.RawMessage `json:"created_at"`
	}
	var e Event
	w.event = (*event)(&e)
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("events: malformed event: %w", err)
	}
	_ = json.Unmarshal(w.CreatedAt, &e.CreatedAt)
	if e.EventType == "" {
		return nil, errors.New("events: malformed event: no event_type")
	}
	p := bytes.TrimSpace(e.Payload)
	switch {
	case len(p) == 0 || bytes.Equal(p, []byte("null")):
		p = nil
	case p[0] == '"': // []byte marshalled by encoding/json: base64
		var raw []byte
		if err := json.Unmarshal(p, &raw); err != nil {
			return nil, fmt.Errorf("events: malformed event: event_payload is a string but not base64: %w", err)
		}
		p = bytes.TrimSpace(raw)
		if len(p) == 0 || bytes.Equal(p, []byte("null")) {
			p = nil
		}
	}
	if p != nil && p[0] != '{' {
		return nil, errors.New("events: malformed event: event_payload is not a JSON object")
	}
	if p != nil && !json.Valid(p) {
		return nil, errors.New("events: malformed event: event_payload is not valid JSON")
	}
	e.Payload = p
	return &e, nil
}

// What an event ends, by event type.
const (
	endsUser       = iota + 1 // the aggregate is the user
	endsToken                 // the aggregate is the user, tokenId the token
	endsGrant                 // the aggregate is a user grant
	endsOIDC                  // the aggregate is an OIDC session
	endsSession               // the aggregate is a (login) session
	endsUnscoped              // a project or org: no user
	learnsGrant               // user.grant.added: remember the grant's user
	learnsSessions            // oidc_session.added: remember the sessions' user
)

var kinds = map[string]int{
	"user.locked": endsUser, "user.deactivated": endsUser, "user.removed": endsUser,
	// Sign-out and a removed refresh token deactivate access tokens too
	// (ZITADEL's TokenView): some of the user's, which this handler cannot
	// tell apart, so the user's. The refresh token's tokenId is no jti.
	"user.human.signed.out": endsUser, "user.signed.out": endsUser, "user.human.refresh.token.removed": endsUser,
	"user.token.removed": endsToken, "user.pat.removed": endsToken,
	"user.grant.changed": endsGrant, "user.grant.cascade.changed": endsGrant, "user.grant.removed": endsGrant,
	"user.grant.cascade.removed": endsGrant, "user.grant.deactivated": endsGrant,
	"oidc_session.access_token.revoked":  endsOIDC,
	"oidc_session.refresh_token.revoked": endsOIDC, // revokes the session's access token with it
	"session.terminated":                 endsSession,
	"project.deactivated":                endsUnscoped, "project.removed": endsUnscoped,
	"org.deactivated": endsUnscoped, "org.removed": endsUnscoped,
	"project.application.deactivated": endsUnscoped, "project.application.removed": endsUnscoped,
	"instance.removed":   endsUnscoped,
	"user.grant.added":   learnsGrant,
	"oidc_session.added": learnsSessions,
}

// Subject returns the user whose access the event ends when the event names
// it itself (user.locked, user.deactivated, user.removed, user.signed.out,
// user.human.signed.out, user.human.refresh.token.removed,
// user.token.removed, user.pat.removed: the aggregate), or "". ZITADEL's grant, session, project
// and org events name no user.
func (e *Event) Subject() string {
	if k := kinds[e.EventType]; k == endsUser || k == endsToken {
		return e.AggregateID
	}
	return ""
}

// TokenID returns the ID of the token that user.token.removed or
// user.pat.removed removes (payload tokenId), or "". It is the jti that
// ZITADEL's introspection reports for that token.
func (e *Event) TokenID() string {
	if kinds[e.EventType] != endsToken {
		return ""
	}
	return e.field("tokenId")
}

// field returns the payload's string field of exactly that name, or "".
func (e *Event) field(name string) string {
	if e.Payload == nil {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(e.Payload, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[name], &s) != nil {
		return ""
	}
	return s
}

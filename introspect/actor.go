package introspect

import "encoding/json"

// Actor is the party acting on the subject's behalf in a delegated token:
// the act claim (RFC 8693 §4.1), which ZITADEL's token exchange sets when
// one user or service acts for another. Nested actors (an actor's own act)
// form the chain of delegation, most recent first.
type Actor struct {
	Subject  string // sub of the actor
	Issuer   string // iss, if the actor names one
	ClientID string // client_id, if the actor names one
	// Chain holds the earlier actors, each with no Chain of its own.
	Chain []Actor
}

// Delegated reports whether the token carries an act claim of any value but
// null (RFC 8693 §4.1 does not require the actor to name a subject): the
// test to refuse delegated tokens on. [Response.Actor] may still report
// false for such a token, when the actor names no subject.
func (r *Response) Delegated() bool {
	if len(r.raw) == 0 {
		return false
	}
	var doc struct {
		Act json.RawMessage `json:"act"`
	}
	if json.Unmarshal(r.raw, &doc) != nil {
		return true // the body was valid JSON when decoded: refuse if it somehow is not
	}
	return len(doc.Act) > 0 && string(doc.Act) != "null"
}

// maxActorDepth bounds how deep a nested act claim is read.
const maxActorDepth = 8

// Actor returns the act claim of a delegated token, decoded anew on each
// call (handlers and requirements that need it often should keep it), and
// false when there is no act claim or its actor names no subject: to
// decide whether a token is delegated, use [Response.Delegated]. The Actor
// is the caller's to keep and modify.
func (r *Response) Actor() (Actor, bool) {
	if len(r.raw) == 0 {
		return Actor{}, false
	}
	var doc struct {
		Act json.RawMessage `json:"act"`
	}
	if json.Unmarshal(r.raw, &doc) != nil || len(doc.Act) == 0 {
		return Actor{}, false
	}
	var a Actor
	next := doc.Act
	for depth := 0; len(next) > 0 && depth < maxActorDepth; depth++ {
		var one struct {
			Subject  string          `json:"sub"`
			Issuer   string          `json:"iss"`
			ClientID string          `json:"client_id"`
			Act      json.RawMessage `json:"act"`
		}
		if json.Unmarshal(next, &one) != nil || one.Subject == "" {
			break
		}
		cur := Actor{Subject: one.Subject, Issuer: one.Issuer, ClientID: one.ClientID}
		if depth == 0 {
			a = cur
		} else {
			a.Chain = append(a.Chain, cur)
		}
		next = one.Act
	}
	return a, a.Subject != ""
}

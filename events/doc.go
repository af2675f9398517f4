// Package events receives ZITADEL Actions v2 event webhooks (targets of
// type webhook or async on event executions) and invalidates the cached
// decisions that an event ends: of a user who was locked, deactivated or
// removed, whose role grant changed or went, whose session ended, or of one
// token that was removed.
//
//	h, err := events.NewHandler(signingKey, guard) // signingKey: from ZITADEL's CreateTarget
//	mux.Handle("POST /zitadel/events", h)
//
// With replicas sharing a cache that tells them about invalidations
// (module rediscache), passing the guard reaches every replica.
//
// # Events
//
// Event types and payload fields are those of ZITADEL's own source
// (internal/repository/user, usergrant, oidcsession, session, project and
// org; internal/execution for the request body). The body is the event's
// aggregateID, aggregateType, resourceOwner, event_type, created_at,
// sequence and event_payload; its userID is whoever caused the event, not
// its subject, and is never read. ZITADEL versions that encode
// event_payload as a base64 string are read too.
//
//	event                                     aggregate     payload          the Handler
//	user.locked, user.deactivated,            user          none             invalidates the user
//	  user.removed
//	user.signed.out, user.human.signed.out,   user          userAgentID,     invalidates the user (ZITADEL ends
//	  user.human.refresh.token.removed                      tokenId          some of its tokens; which is not told)
//	user.token.removed, user.pat.removed      user          tokenId          invalidates that token only (see below)
//	user.grant.changed, .cascade.changed,     usergrant     roleKeys or      invalidates the grant's user, if known (see below)
//	  .removed, .cascade.removed,                           none: no user
//	  .deactivated
//	oidc_session.access_token.revoked,        oidc_session  none             invalidates the session's user, if known
//	  .refresh_token.revoked (ends the access token too)
//	session.terminated                        session       triggerOrigin    invalidates the session's user, if known
//	project.deactivated, project.removed,     project, org, none or appId    names no user: see below
//	  org.deactivated, org.removed,           instance
//	  project.application.deactivated,
//	  project.application.removed,
//	  instance.removed
//	user.grant.added                          usergrant     userId, ...      remembers the grant's user
//	oidc_session.added                        oidc_session  userID,          remembers the sessions' user
//	                                                        sessionID, ...
//
// Subscribe the execution to these events (or to their groups); other
// events are accepted and ignored.
//
// Token IDs: ZITADEL's introspection reports a token's ID as jti, for
// opaque and JWT access tokens alike (internal/api/oidc: jti is the token ID
// that the token decrypts or verifies to). For tokens of the user token
// store and for personal access tokens (an opaque token that encrypts
// "<tokenID>:<userID>") that is the tokenId of user.token.removed and
// user.pat.removed, so the Handler calls InvalidateTokenID(tokenId) when
// the [Invalidator] implements [TokenIDInvalidator] (*tokenguard.Guard and
// *introspect.Client do): the user's other tokens stay cached. An
// Invalidator without it, or an event without a tokenId, invalidates the
// whole user instead.
//
// Tokens of OIDC sessions (jti "V2_<session>.<at_id>"; "-" in older
// versions) are revoked with oidc_session.access_token.revoked (or with
// the session's refresh token, oidc_session.refresh_token.revoked), and end
// with session.terminated; neither payload names the user or the token. The
// user of an OIDC session and of the session it was created from comes from
// oidc_session.added. Likewise ZITADEL's user grant events other than
// user.grant.added name only the grant (their aggregate), so the user comes
// from user.grant.added. The Handler remembers these (the latest 10,000 of
// each kind, in memory, in this process): an event whose user it has not
// seen, because the grant or session predates the process or its added
// event reached another replica, is passed to the function given with
// [WithResolver], which can look the grant or session up with ZITADEL's API.
//
// Project, application, org and instance deactivation or removal name no
// user either (ZITADEL ends the tokens of an application with its
// deactivation or removal), and nothing is cached by project or org. Removing a project or a project grant
// also sends user.grant.cascade.removed for the user grants it takes
// along (ZITADEL's RemoveProject and RemoveProjectGrant commands), handled
// as above. For the rest give [WithResolver] a function that does what fits, e.g. call
// guard.Client().Purge() (this process only) when the project is the API's
// own. Without a resolver, such events are logged (at Warn, rate-limited)
// and cached decisions stand until they expire (the max TTL, 5 minutes by
// default).
//
// # Caching
//
// Nothing is cached but the IDs above; each accepted event invalidates at
// once.
//
// # Security
//
// Requests MUST carry a valid ZITADEL-Signature header (t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<raw body>">, as ZITADEL signs with the target's
// signing key; X-ZITADEL-Signature is accepted too). Unsigned, badly signed,
// stale (over 5 minutes apart from this clock by default) and oversized
// (over 64 KiB) requests are refused and change nothing, and are logged at
// Warn at most once a second, each line counting the refusals left out
// since the one before, so that a flood cannot flood the logs. A Handler is
// safe for concurrent use.
package events

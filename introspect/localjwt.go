package introspect

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokenguard/tokenguard/internal/loopback"
	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// JWT access tokens verified locally, introspection behind them.
//
// With WithLocalJWT, a cache miss for a token that is a compact JWS is
// decided without the network when the token verifies: signature with a
// key of the issuer's JWKS (its declared asymmetric algorithm only), iss,
// exp and nbf. That decision is provisional. It is cached in the LRU, like
// an answer, stamped before the verification began (so the invalidations
// of invalidate.go apply to it unchanged), for at most the Client's
// timeout, never in the shared cache; and one introspection, the
// confirmation, starts at once in the background, through the singleflight
// group, as a request-path miss would. Its answer replaces the provisional
// entry: an inactive answer refuses the token from then on and ends the
// streams watching it. A request that needs the server's answer (a
// requirement the JWT's claims do not meet: [Client.Confirm]) joins it.
//
// A token is decided locally only on its first use in this process and
// only until its confirmation ends. Per token, a record (seen) keeps, until
// the token's exp plus the leeway, that the server has answered about it
// (active or not) or that its confirmation failed: from then on it is an
// introspected token, like an opaque one, and when the server's cached
// answer expires or is invalidated the next request asks the server. The
// records are an LRU bounded like the cache; an evicted record raises a
// high-water mark of iat, and only tokens issued after the mark are decided
// locally (tokens without iat never are), so a flood of records degrades to
// plain introspection instead of re-opening local decisions. A token that
// an invalidation still on record concerns (its key, subject or jti), and
// every token for a while after a Purge, is decided by the server too.

// Defaults of [LocalJWT].
const (
	DefaultJWTLeeway           = 5 * time.Second
	DefaultJWKSRefreshInterval = time.Minute
)

// LocalJWT configures the local verification of JWT access tokens; see
// [WithLocalJWT].
type LocalJWT struct {
	// Issuer is what a token's iss must equal, exactly: the issuer of the
	// discovery document. Required.
	Issuer string
	// JWKSURL is the issuer's key set (jwks_uri). Default: discovered from
	// Issuer with [Discover] when first needed, one attempt at a time with
	// backoff; meanwhile JWTs are introspected.
	JWKSURL string
	// Leeway allows for clock skew on exp and nbf. Default:
	// [DefaultJWTLeeway] (5 s); it must not be negative.
	Leeway time.Duration
	// RefreshInterval is the least time between two fetches of the JWKS
	// forced by a key ID that it lacks. Default: [DefaultJWKSRefreshInterval]
	// (1 min); it must not be negative.
	RefreshInterval time.Duration
}

// WithLocalJWT turns on the local verification of JWT access tokens: on a
// cache miss, a token that is a compact JWS is verified with the issuer's
// keys (from its JWKS, fetched and refreshed by a
// github.com/lestrrat-go/jwx/v3/jwk cache through this Client's HTTP
// client, no redirects followed) instead of waiting for the server. Only
// the asymmetric algorithm that the token's key declares in the JWKS is
// accepted: never none, never HMAC. iss must equal cfg.Issuer; exp is
// required and, with nbf, checked with cfg.Leeway. A key ID that the JWKS
// lacks refreshes it, at most once per cfg.RefreshInterval. A token that
// fails these checks is refused ([*JWTError], matching [ErrInactive]); one
// whose key cannot be had, or that does not look like an access token (no
// sub, jti or exp; a nonce or at_hash as in ID tokens), is introspected.
// Tokens that are not JWS (ZITADEL's opaque tokens) are introspected as
// without this option. Audience and requirements stay the caller's to
// check, as for introspection answers.
//
// A local decision is made only on a token's first use in this process
// (and only for a token with iat): one introspection confirms it at once,
// in the background, and its answer replaces it in the cache; until then
// (at most [WithTimeout]) the local result is served. Once the server has
// answered about a token, or its confirmation failed, the token is
// introspected until its exp, as without this option. So a JWT revoked
// before its first use here is accepted for at most one round trip, and
// one revoked (or a role removed) while in use is refused within the max
// TTL, as with introspection; a token that an invalidation on record
// concerns, or any token for the max TTL after [Client.Purge], is decided
// by the server on the request path. [WithStaleIfError] covers only tokens
// the server has answered active: a confirmation that fails sends the
// token's next request to the server.
// [Response.Local] tells a local result; [Client.Confirm] waits for the
// server's answer.
//
// Default: off. It needs the cache ([New] refuses it with [WithoutCache]).
// The JWKS cache starts goroutines on first use (or [Client.FetchJWKS]);
// [Client.Close] stops them.
func WithLocalJWT(cfg LocalJWT) Option { return func(c *config) { c.local = &cfg } }

// JWTError is the refusal of a JWT access token verified locally
// ([WithLocalJWT]): a signature that does not verify, an algorithm that is
// not the key's, another issuer, an expired token. It matches [ErrInactive]
// with errors.Is, so the middleware answers 401 invalid_token. Reason is
// for logs; it never contains the token.
type JWTError struct {
	Reason string
}

func (e *JWTError) Error() string { return "introspect: JWT access token refused: " + e.Reason }

// Is makes errors.Is(err, ErrInactive) true.
func (e *JWTError) Is(target error) bool { return target == ErrInactive }

// localJWT is the state of WithLocalJWT.
type localJWT struct {
	issuer string
	leeway time.Duration
	keys   *keySet
	seen   *seenSet

	mu       sync.Mutex // guards purgeGen and purgeAt
	purgeGen uint64     // the last Purge's generation seen
	purgeAt  int64      // when it was first seen (Unix ns)
}

// jwtState is what local decisions about one token must respect.
type jwtState struct {
	pending bool  // decided locally, its confirmation not ended
	server  bool  // the server answered, or a confirmation failed: never local again
	iat     int64 // the token's iat (Unix s), for the eviction mark; 0 if unknown
	exp     int64 // the token's exp (Unix ns), for the record's expiry
}

// seenSet is the LRU of per-token records of [WithLocalJWT], bounded by
// size, each kept until its expiry (the token's exp plus the leeway). An
// eviction of a record not expired raises mark to its iat. It is safe for
// concurrent use.
type seenSet struct {
	now  func() time.Time
	size int

	mu   sync.Mutex // guards the fields below
	m    map[[sha256.Size]byte]*list.Element
	ll   list.List // of *seenEntry, most recent first
	mark int64     // the greatest iat (Unix s) of an evicted record
}

type seenEntry struct {
	key     [sha256.Size]byte
	st      jwtState
	expires int64 // Unix ns
}

func newSeenSet(size int, now func() time.Time) *seenSet {
	return &seenSet{now: now, size: max(size, 1), m: make(map[[sha256.Size]byte]*list.Element)}
}

// get returns the record of key, if one is kept and not expired at now.
func (s *seenSet) get(key [sha256.Size]byte, now time.Time) (jwtState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return jwtState{}, false
	}
	se := e.Value.(*seenEntry)
	if now.UnixNano() >= se.expires {
		s.ll.Remove(e)
		delete(s.m, key)
		return jwtState{}, false
	}
	s.ll.MoveToFront(e)
	return se.st, true
}

// add keeps st for key until expires, evicting the least recently used
// record beyond the size.
func (s *seenSet) add(key [sha256.Size]byte, st jwtState, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		se := e.Value.(*seenEntry)
		se.st, se.expires = st, expires.UnixNano()
		s.ll.MoveToFront(e)
		return
	}
	s.m[key] = s.ll.PushFront(&seenEntry{key: key, st: st, expires: expires.UnixNano()})
	now := s.now().UnixNano()
	for s.ll.Len() > s.size {
		e := s.ll.Back()
		se := e.Value.(*seenEntry)
		s.ll.Remove(e)
		delete(s.m, se.key)
		if now < se.expires && se.st.iat > s.mark { // an expired token is refused anyway
			s.mark = se.st.iat
		}
	}
}

// after reports whether a token issued at iat (Unix s) is newer than every
// evicted record.
func (s *seenSet) after(iat int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return iat > s.mark
}

// jwtTimes returns the iat (Unix s, at most now) and exp of token's
// payload, read without verifying it: only to keep a record about the token
// as long as the token could verify (a token whose signature does not
// verify is never decided locally whatever its record says). It reports
// false without a numeric exp: such a token is never decided locally.
func jwtTimes(token string, now time.Time) (iat int64, exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return 0, time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, time.Time{}, false
	}
	var r Response
	if r.UnmarshalJSON(raw) != nil || r.Expiration.AsTime().IsZero() {
		return 0, time.Time{}, false
	}
	if t := r.IssuedAt.AsTime(); !t.IsZero() {
		iat = min(t.Unix(), now.Unix())
	}
	return iat, r.Expiration.AsTime(), true
}

// newLocalJWT checks cfg.local and builds the state.
func newLocalJWT(cfg *config) (*localJWT, error) {
	l := *cfg.local
	u, err := url.Parse(l.Issuer)
	switch {
	case l.Issuer == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, fmt.Errorf("introspect: WithLocalJWT needs the issuer as an absolute http(s) URL, not %q", l.Issuer)
	case u.Scheme == "http" && !cfg.insecureHTTP && !loopback.Host(u.Hostname()):
		// Discovery over plain http names the JWKS: whoever can change it in
		// transit can point it at keys of their own and sign tokens.
		return nil, fmt.Errorf("introspect: WithLocalJWT issuer %q uses plain http on a host that is not loopback: use https, or WithInsecureAllowHTTP on a trusted network", u.Redacted())
	case l.Leeway < 0 || l.RefreshInterval < 0:
		return nil, fmt.Errorf("introspect: WithLocalJWT leeway %v and refresh interval %v must not be negative", l.Leeway, l.RefreshInterval)
	}
	if l.JWKSURL != "" {
		if err := checkJWKSURL(l.JWKSURL, cfg.insecureHTTP); err != nil {
			return nil, err
		}
	}
	if l.Leeway == 0 {
		l.Leeway = DefaultJWTLeeway
	}
	if l.RefreshInterval == 0 {
		l.RefreshInterval = DefaultJWKSRefreshInterval
	}
	hc := *cfg.httpClient // already without redirects
	if hc.Timeout == 0 {
		hc.Timeout = cfg.attemptTimeout
	}
	return &localJWT{issuer: l.Issuer, leeway: l.Leeway, seen: newSeenSet(cfg.cacheSize, cfg.now), keys: &keySet{
		issuer: l.Issuer, url: l.JWKSURL, hc: &hc, now: cfg.now, interval: l.RefreshInterval,
		timeout: min(cfg.attemptTimeout, cfg.timeout), insecure: cfg.insecureHTTP,
	}}, nil
}

// jwsHeader is the part of a JWS protected header a local decision reads.
type jwsHeader struct {
	alg, kid string
}

// maxJWSHeader bounds the protected header read; ZITADEL's are ~100 bytes.
const maxJWSHeader = 4 << 10

// parseJWS reports whether token is a compact JWS (three base64url parts,
// the first a JSON object with an alg), and returns its header. Members
// are matched by their exact names.
//
// The signature must be in canonical form (unpadded base64url, unused
// bits zero): its bytes are all that verification reads, so padding, the
// standard alphabet or other trailing bits would make one JWT many
// distinct tokens, each with its own cache key and its own record of what
// the server said, and each decided locally anew. A token in another form
// is left to introspection. The header and payload need no such check:
// the signature covers their encoded form.
func parseJWS(token string) (jwsHeader, bool) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 || len(head) > maxJWSHeader || head == "" || strings.ContainsAny(token, "\r\n") {
		return jwsHeader{}, false // base64 decoders skip CR and LF: more forms of one JWT
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(rest[strings.IndexByte(rest, '.')+1:]); err != nil {
		return jwsHeader{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return jwsHeader{}, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return jwsHeader{}, false
	}
	var h jwsHeader
	if json.Unmarshal(m["alg"], &h.alg) != nil || h.alg == "" {
		return jwsHeader{}, false
	}
	_ = json.Unmarshal(m["kid"], &h.kid) // a kid that is not a string: none
	return h, true
}

// decideLocally decides a cache miss for token locally when it can. It
// reports false when the token is to be introspected as usual: not a JWS,
// its key not to be had, not an access token, or the server's answer
// required (see seen and touched).
func (c *Client) decideLocally(ctx context.Context, key [sha256.Size]byte, token string) (_ *Response, _ error, decided bool) {
	l := c.local
	h, ok := parseJWS(token)
	if !ok {
		return nil, nil, false
	}
	now := c.cfg.now()
	s := stamp{filled: now.UnixNano(), gen: c.rev.gen.Load()} // before the verification: an invalidation meanwhile wins
	st, known := l.seen.get(key, now)
	if known && st.server {
		c.metrics.Verified(ctx, telemetry.Deferred)
		return nil, nil, false
	}
	r, err := l.verify(ctx, h, token, now)
	var refusal *JWTError
	switch {
	case errors.As(err, &refusal):
		c.metrics.Verified(ctx, telemetry.Refused)
		if refusal.Reason != reasonNotYetValid && c.neg != nil { // the others are for good
			c.storeLocal(ctx, key, inactive, SharedEntry{Expires: now.Add(c.cfg.negativeTTL)}, s)
		}
		return nil, err, true
	case err != nil || r.IssuedAt.AsTime().IsZero() || !l.seen.after(r.IssuedAt.AsTime().Unix()) || c.touched(key, r, now):
		c.metrics.Verified(ctx, telemetry.Deferred)
		return nil, nil, false
	}
	exp := r.Expiration.AsTime()
	l.seen.add(key, jwtState{pending: true, iat: r.IssuedAt.AsTime().Unix(), exp: exp.UnixNano()}, exp.Add(l.leeway))
	fresh := earliest(exp, now.Add(c.cfg.maxTTL), now.Add(c.cfg.timeout))
	c.storeLocal(ctx, key, r, SharedEntry{Filled: now, Fresh: fresh, Expires: fresh}, s)
	if c.neg != nil {
		if _, ok := c.neg.GetAt(key, now); ok { // an inactive answer that raced in wins
			c.cache.Remove(key)
		}
	}
	c.group.DoChan(flightKey(key, s.gen), c.flight(context.WithoutCancel(ctx), key, token, s.gen, nil)) // the confirmation
	c.metrics.Verified(ctx, telemetry.Accepted)
	return r, nil, true
}

const reasonNotYetValid = "token is not valid yet"

// verify checks token, whose header is h, against the issuer's keys and
// claims. It returns a *JWTError for a token to refuse, another error for
// one to introspect.
func (l *localJWT) verify(ctx context.Context, h jwsHeader, token string, now time.Time) (*Response, error) {
	if !asymmetric[h.alg] {
		return nil, &JWTError{Reason: fmt.Sprintf("algorithm %q is not accepted", h.alg)}
	}
	if h.kid == "" {
		return nil, &JWTError{Reason: "no key ID (kid) in the header"}
	}
	vk, err := l.keys.key(ctx, h.kid)
	if err != nil {
		return nil, err
	}
	switch {
	case vk.bad != "":
		return nil, &JWTError{Reason: vk.bad}
	case vk.alg.String() != h.alg:
		return nil, &JWTError{Reason: fmt.Sprintf("algorithm %q is not the key's %q", h.alg, vk.alg.String())}
	}
	payload, err := jws.VerifyCompactFast(vk.raw, []byte(token), vk.alg)
	if err != nil {
		return nil, &JWTError{Reason: "signature does not verify"}
	}
	r := new(Response)
	if err := r.UnmarshalJSON(payload); err != nil {
		return nil, &JWTError{Reason: "payload is not a JSON object of claims of the right types"}
	}
	if r.Subject == "" || r.JWTID == "" || r.Expiration.AsTime().IsZero() ||
		bytes.Contains(payload, []byte(`"nonce"`)) || bytes.Contains(payload, []byte(`"at_hash"`)) {
		return nil, errNoKey // not an access token as ZITADEL issues them (an ID token?): the server decides
	}
	r.Active = true // what the signature, iss and exp below establish; the payload's own "active" means nothing
	r.local = true
	switch exp, nbf := r.Expiration.AsTime(), r.NotBefore.AsTime(); {
	case r.Issuer != l.issuer:
		return nil, &JWTError{Reason: "issued by another issuer"}
	case exp.IsZero() || !now.Before(exp.Add(l.leeway)):
		return nil, &JWTError{Reason: "token has expired"}
	case !nbf.IsZero() && now.Add(l.leeway).Before(nbf):
		return nil, &JWTError{Reason: reasonNotYetValid}
	}
	return r, nil
}

// touched reports whether an invalidation on record concerns the token
// with this key and local result r (its key, subject or jti), or a Purge
// was seen less than the record time ago: the server must decide.
func (c *Client) touched(key [sha256.Size]byte, r *Response, now time.Time) bool {
	keep := int64(c.cfg.maxTTL + c.cfg.staleIfErr + c.cfg.timeout)
	t := now.UnixNano()
	rv := &c.rev
	rv.mu.RLock()
	purged := rv.purged
	recent := func(k revKey) bool {
		x, ok := rv.byID[k]
		return ok && k.id != "" && t-x.latest() <= keep
	}
	x, ok := rv.keys[key]
	hit := (ok && t-x.latest() <= keep) || recent(revKey{bySubject, r.Subject}) || recent(revKey{byTokenID, r.JWTID})
	rv.mu.RUnlock()
	if hit || purged == 0 {
		return hit
	}
	l := c.local
	l.mu.Lock()
	defer l.mu.Unlock()
	if purged != l.purgeGen {
		l.purgeGen, l.purgeAt = purged, t
	}
	return t-l.purgeAt <= keep
}

// settled records the server's answer r about the token with this key
// (from a flight: a confirmation, a request-path introspection, or the
// shared cache). An inactive answer ends the streams that watch the token,
// whether or not the answer may be cached, and whether they were opened on
// the server's answer or on a local decision. With WithLocalJWT, the token
// is from then on decided by the server until its exp.
func (c *Client) settled(ctx context.Context, key [sha256.Size]byte, token string, r *Response) {
	if !r.Active {
		c.notify(watchKey{key: key}, false, 0)
	}
	l := c.local
	if l == nil {
		return
	}
	now := c.cfg.now()
	st, known := l.seen.get(key, now)
	pending := known && st.pending
	if !known {
		if _, ok := parseJWS(token); !ok {
			return // an opaque token: nothing to remember
		}
	}
	switch iat, exp, ok := jwtTimes(token, now); {
	case known:
		l.seen.add(key, jwtState{server: true, iat: st.iat, exp: st.exp}, time.Unix(0, st.exp).Add(l.leeway))
	case ok:
		l.seen.add(key, jwtState{server: true, iat: iat, exp: exp.UnixNano()}, exp.Add(l.leeway))
	} // else no exp: never decided locally, nothing to remember
	if !pending {
		return
	}
	if r.Active {
		c.metrics.Confirmed(ctx, telemetry.Confirmed)
		return
	}
	c.metrics.Confirmed(ctx, telemetry.Overruled) // its streams ended above
}

// unsettled records a flight about the token with this key that got no
// answer: a local decision pending confirmation is dropped from the cache,
// the streams opened on it end (an outage fails closed), and the next
// decision comes from the server (WithStaleIfError covers only answers of
// the server).
func (c *Client) unsettled(ctx context.Context, key [sha256.Size]byte) {
	l := c.local
	if l == nil {
		return
	}
	now := c.cfg.now()
	st, known := l.seen.get(key, now)
	if !known || !st.pending {
		return
	}
	c.metrics.Confirmed(ctx, telemetry.Unconfirmed)
	if e, ok := c.cache.GetAt(key, now); ok && e.resp.local {
		c.cache.Remove(key)
	}
	st.pending, st.server = false, true
	l.seen.add(key, st, time.Unix(0, st.exp).Add(l.leeway))
	c.notify(watchKey{key: key}, false, 0)
}

// Confirm returns the authorization server's answer about token, as
// [Client.Introspect] does, but never a local decision ([WithLocalJWT]):
// it joins the confirmation under way for token, or introspects it now,
// and waits, within ctx. A cached answer of the server is returned at once.
// The middleware calls it when a requirement refuses a local result, whose
// JWT may lack claims (roles) that introspection gives. It is safe for
// concurrent use.
func (c *Client) Confirm(ctx context.Context, token string) (*Response, error) {
	if token == "" {
		return nil, ErrInactive
	}
	if c.cache == nil {
		return result(c.callDirect(ctx, token))
	}
	key := c.key(token)
	switch r, _, state, _ := c.peek(key, c.cfg.now()); {
	case state == hitActive && !r.local:
		return r, nil
	case state == hitInactive:
		return nil, ErrInactive
	}
	return c.introspectMiss(ctx, key, token)
}

// FetchJWKS starts the JWKS cache of [WithLocalJWT] (after discovering the
// JWKS URL if it was not given) and waits, within ctx and the Client's
// attempt timeout, for the first fetch, so that the first JWT is verified
// without waiting for the keys. It returns nil at once without
// WithLocalJWT, and an error matching [ErrUnavailable] when the keys cannot
// be had; JWTs are then introspected until they can. It is safe for
// concurrent use.
func (c *Client) FetchJWKS(ctx context.Context) error {
	if c.local == nil {
		return nil
	}
	return c.local.keys.prefetch(ctx)
}

// Close stops the Client's background goroutines and waits for them: the
// JWKS cache of [WithLocalJWT] (JWTs are introspected from then on), and
// the running attempt to resolve the endpoint of a [NewDeferred] Client
// (one that has not resolved it by then never will: its calls fail with
// [ErrNotReady]). Confirmations under way end within [WithTimeout]. It is
// safe to call more than once, and returns nil when there was nothing to
// stop.
func (c *Client) Close() error {
	if c.resolver != nil {
		c.resolver.close()
	}
	if c.local == nil {
		return nil
	}
	return c.local.keys.close()
}

// Local reports whether r is a local decision of [WithLocalJWT]: the claims
// of a JWT access token verified with the issuer's keys, not (yet)
// confirmed by the server. Such a result carries what the JWT carries:
// ZITADEL puts role claims in JWTs only when the project asserts roles,
// and no username.
func (r *Response) Local() bool { return r.local }

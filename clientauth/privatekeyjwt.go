package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// DefaultLifetime is how long an assertion is valid unless [WithLifetime] says
// otherwise.
const DefaultLifetime = time.Minute

// Option configures a [PrivateKeyJWT].
type Option func(*jwtConfig)

type jwtConfig struct {
	lifetime time.Duration
	fresh    bool
	now      func() time.Time
	logger   *slog.Logger
}

// WithLifetime sets how long each assertion is valid (its exp minus its iat).
// Default: [DefaultLifetime] (1 minute). ZITADEL refuses assertions whose iat
// is more than an hour old, so lifetimes over an hour are refused by
// [NewPrivateKeyJWT]; so are lifetimes under 10 s.
func WithLifetime(d time.Duration) Option { return func(c *jwtConfig) { c.lifetime = d } }

// WithFreshAssertions makes [PrivateKeyJWT.Assertion] sign a fresh assertion,
// with a new jti, for every call, as RFC 7523 §3 (item 7) recommends, at the
// cost of one signature per introspection (an RSA-2048 signature takes about
// a millisecond of CPU). Default: off, one assertion is reused until shortly
// before it expires (see [PrivateKeyJWT]).
func WithFreshAssertions() Option { return func(c *jwtConfig) { c.fresh = true } }

// WithReuse reuses one assertion until shortly before it expires. It is the
// default, and undoes an earlier [WithFreshAssertions].
func WithReuse() Option { return func(c *jwtConfig) { c.fresh = false } }

// WithLogger sets where a [PrivateKeyJWT] logs, once, that it switched to
// fresh assertions because the server refused a reused one. Default:
// [slog.Default].
func WithLogger(l *slog.Logger) Option {
	return func(c *jwtConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithClock sets the clock for iat and exp. Default: [time.Now].
func WithClock(now func() time.Time) Option {
	return func(c *jwtConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// PrivateKeyJWT authenticates a client with JWT assertions signed by its
// private key (RFC 7523 §2.2, "private_key_jwt"). Each assertion has the
// header alg and kid, and the claims iss and sub (the client ID), aud (the
// authorization server's issuer), iat, exp and a random jti.
//
// By default one assertion is reused until a fifth of its lifetime (at least
// 5 s) is left: then the next caller signs its successor while the others
// keep the current one, and once less than half of that margin is left
// callers wait for the new one. At most one signature is in progress at a
// time, however many calls arrive at once. ZITADEL accepts a reused
// assertion (it does not check jti for replay). A server that does refuse
// one answers with a client authentication error: [PrivateKeyJWT.ClientAuthRejected]
// then switches this PrivateKeyJWT to a fresh assertion per call for good,
// logs that once, and tells the caller (package introspect does this) to
// retry once. [WithFreshAssertions] signs per call from the start.
//
// The trade-off of reuse: whoever captures an assertion (it travels only to
// the authorization server, over TLS in production) can replay it to
// authenticate as this client until it expires, at most [WithLifetime]
// (default 1 minute) after it was signed; a fresh assertion per call can be
// replayed just as long against a server that does not check jti, but not
// against one that does.
//
// A PrivateKeyJWT is safe for concurrent use.
type PrivateKeyJWT struct {
	signer   crypto.Signer
	alg      jwa.SignatureAlgorithm
	keyID    string
	clientID string
	audience string
	cfg      jwtConfig

	mu      sync.Mutex // guards fresh, cur, prev and signing
	fresh   bool       // sign per call: WithFreshAssertions, or since a reused assertion was refused
	cur     reused     // the assertion handed out while reusing
	prev    reused     // the one cur replaced: may still be in flight
	signing *signature // the signature in progress while reusing, if any
}

// reused is an assertion handed out to several callers.
type reused struct {
	jwt     string
	renewAt time.Time // from here, one caller signs a successor
	stopAt  time.Time // from here, it is no longer handed out
	uses    int       // how many callers it was handed to
}

// signature is a signature in progress; done is closed when jwt or err is set.
type signature struct {
	done chan struct{}
	jwt  string
	err  error
}

// NewPrivateKeyJWT returns a PrivateKeyJWT that signs with signer under the
// given key ID, as clientID, for audience. The audience MUST be the
// authorization server's issuer exactly as its discovery document states it
// (ZITADEL compares it verbatim; do not add or remove a trailing slash).
// The algorithm follows the key: RS256 for RSA, ES256/ES384/ES512 for ECDSA
// on P-256/P-384/P-521, EdDSA for Ed25519. It signs nothing yet and starts
// no goroutine.
func NewPrivateKeyJWT(signer crypto.Signer, keyID, clientID, audience string, opts ...Option) (*PrivateKeyJWT, error) {
	if signer == nil {
		return nil, errors.New("clientauth: nil signer")
	}
	if clientID == "" {
		return nil, errors.New("clientauth: empty client ID")
	}
	if audience == "" {
		return nil, errors.New("clientauth: empty audience; pass the issuer")
	}
	alg, err := algorithmFor(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("clientauth: %w", err)
	}
	cfg := jwtConfig{lifetime: DefaultLifetime, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.lifetime < 10*time.Second || cfg.lifetime > time.Hour {
		return nil, fmt.Errorf("clientauth: assertion lifetime %v out of range [10s, 1h]", cfg.lifetime)
	}
	return &PrivateKeyJWT{signer: signer, alg: alg, keyID: keyID, clientID: clientID, audience: audience, cfg: cfg, fresh: cfg.fresh}, nil
}

// PrivateKeyJWT returns a [PrivateKeyJWT] that signs with k as k.ClientID for
// audience, the issuer exactly as discovered.
func (k *Key) PrivateKeyJWT(audience string, opts ...Option) (*PrivateKeyJWT, error) {
	return NewPrivateKeyJWT(k.Signer, k.KeyID, k.ClientID, audience, opts...)
}

// ClientID returns the client ID the assertions are issued for.
func (p *PrivateKeyJWT) ClientID() string { return p.clientID }

// Assertion returns a signed assertion: the current one while enough of its
// lifetime is left, or a fresh one (see [PrivateKeyJWT] for when). Callers
// that find no usable assertion while another caller signs one wait for that
// signature and share its result, error included.
func (p *PrivateKeyJWT) Assertion() (string, error) {
	p.mu.Lock()
	for {
		if p.fresh {
			p.mu.Unlock()
			return p.sign(p.cfg.now())
		}
		now := p.cfg.now()
		c := &p.cur
		if c.jwt != "" && (now.Before(c.renewAt) || p.signing != nil && now.Before(c.stopAt)) {
			c.uses++
			a := c.jwt
			p.mu.Unlock()
			return a, nil
		}
		if s := p.signing; s != nil {
			p.mu.Unlock()
			<-s.done
			if s.err != nil {
				return "", s.err
			}
			p.mu.Lock()
			continue // take it as cur, unless the mode changed meanwhile
		}
		s := &signature{done: make(chan struct{})}
		p.signing = s
		p.mu.Unlock()
		s.jwt, s.err = p.sign(now)
		p.mu.Lock()
		p.signing = nil
		close(s.done)
		if s.err != nil {
			p.mu.Unlock()
			return "", s.err
		}
		if !p.fresh { // unless a refusal switched modes meanwhile: then it is this caller's alone
			margin := max(p.cfg.lifetime/5, 5*time.Second)
			exp := now.Add(p.cfg.lifetime)
			p.prev = p.cur
			p.cur = reused{jwt: s.jwt, renewAt: exp.Add(-margin), stopAt: exp.Add(-margin / 2), uses: 1}
		}
		p.mu.Unlock()
		return s.jwt, nil
	}
}

// AuthenticateClient adds client_assertion_type and client_assertion to form.
func (p *PrivateKeyJWT) AuthenticateClient(form url.Values, _ http.Header) error {
	a, err := p.Assertion()
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", AssertionType)
	form.Set("client_assertion", a)
	return nil
}

// ClientAuthRejected is told that the server refused to authenticate the
// client on a request whose credentials [PrivateKeyJWT.AuthenticateClient]
// put in form. If that request carried a reused assertion (one handed out
// more than once), it switches to a fresh assertion per call for good, logs
// that once at Warn, and returns true: a retry with fresh credentials may
// succeed. It returns false for a fresh assertion, an assertion used once
// and a form it did not fill: the refusal has another cause (a wrong or
// deleted key, a clock far off) that a retry would not fix. It implements
// introspect.RejectionHandler and is safe for concurrent use.
func (p *PrivateKeyJWT) ClientAuthRejected(form url.Values, _ http.Header) bool {
	a := form.Get("client_assertion")
	if a == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var r reused
	switch a {
	case p.cur.jwt:
		r = p.cur
	case p.prev.jwt:
		r = p.prev
	}
	if r.uses < 2 {
		return false
	}
	if !p.fresh {
		p.fresh = true
		logger := p.cfg.logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.Warn("clientauth: the authorization server refused a reused client assertion; signing a fresh assertion for every request from now on",
			slog.String("client_id", p.clientID), slog.String("audience", p.audience))
	}
	return true
}

func (p *PrivateKeyJWT) sign(now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("clientauth: jti: %w", err)
	}
	tok, err := jwt.NewBuilder().
		Issuer(p.clientID).
		Subject(p.clientID).
		Audience([]string{p.audience}).
		IssuedAt(now).
		Expiration(now.Add(p.cfg.lifetime)).
		JwtID(hex.EncodeToString(jti[:])).
		Build()
	if err != nil {
		return "", fmt.Errorf("clientauth: building assertion: %w", err)
	}
	hdr := jws.NewHeaders()
	if p.keyID != "" {
		if err := hdr.Set(jws.KeyIDKey, p.keyID); err != nil {
			return "", fmt.Errorf("clientauth: assertion header: %w", err)
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(p.alg, p.signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("clientauth: signing assertion: %w", err)
	}
	return string(signed), nil
}

// algorithmFor picks the JWS algorithm for a public (or private) key.
func algorithmFor(key any) (jwa.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return jwa.SignatureAlgorithm{}, fmt.Errorf("RSA key of %d bits is too short; want at least %d", k.N.BitLen(), MinRSABits)
		}
		return jwa.RS256(), nil
	case *rsa.PrivateKey:
		return algorithmFor(&k.PublicKey)
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwa.ES256(), nil
		case elliptic.P384():
			return jwa.ES384(), nil
		case elliptic.P521():
			return jwa.ES512(), nil
		}
		return jwa.SignatureAlgorithm{}, errors.New("unsupported ECDSA curve; want P-256, P-384 or P-521")
	case *ecdsa.PrivateKey:
		return algorithmFor(&k.PublicKey)
	case ed25519.PublicKey, ed25519.PrivateKey:
		return jwa.EdDSA(), nil
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("unsupported key type %T; want RSA, ECDSA or Ed25519", key)
}

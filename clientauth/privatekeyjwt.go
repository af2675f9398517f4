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
	reuse    bool
	now      func() time.Time
}

// WithLifetime sets how long each assertion is valid (its exp minus its iat).
// Default: [DefaultLifetime]. ZITADEL refuses assertions whose iat is more
// than an hour old, so lifetimes over an hour are refused by
// [NewPrivateKeyJWT].
func WithLifetime(d time.Duration) Option { return func(c *jwtConfig) { c.lifetime = d } }

// WithReuse makes [PrivateKeyJWT.Assertion] return the same assertion until a
// fifth of its lifetime (at least 5 s) is left, then sign a new one. Default:
// off, a fresh assertion with a new jti for every call.
//
// Reuse takes signing off the introspection path (an RSA-2048 signature costs
// about a millisecond of CPU). ZITADEL accepts a reused assertion; servers
// that enforce jti uniqueness (RFC 7523 §3, item 7) do not. A captured
// assertion can be replayed until it expires either way; reuse makes each one
// live as long as the lifetime allows, so keep the lifetime short.
func WithReuse() Option { return func(c *jwtConfig) { c.reuse = true } }

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
// A PrivateKeyJWT is safe for concurrent use.
type PrivateKeyJWT struct {
	signer   crypto.Signer
	alg      jwa.SignatureAlgorithm
	keyID    string
	clientID string
	audience string
	cfg      jwtConfig

	mu          sync.Mutex // guards cached and cachedUntil
	cached      string
	cachedUntil time.Time
}

// NewPrivateKeyJWT returns a PrivateKeyJWT that signs with signer under the
// given key ID, as clientID, for audience. The audience MUST be the
// authorization server's issuer exactly as its discovery document states it
// (ZITADEL compares it verbatim; do not add or remove a trailing slash).
// The algorithm follows the key: RS256 for RSA, ES256/ES384/ES512 for ECDSA
// on P-256/P-384/P-521, EdDSA for Ed25519.
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
	return &PrivateKeyJWT{signer: signer, alg: alg, keyID: keyID, clientID: clientID, audience: audience, cfg: cfg}, nil
}

// PrivateKeyJWT returns a [PrivateKeyJWT] that signs with k as k.ClientID for
// audience, the issuer exactly as discovered.
func (k *Key) PrivateKeyJWT(audience string, opts ...Option) (*PrivateKeyJWT, error) {
	return NewPrivateKeyJWT(k.Signer, k.KeyID, k.ClientID, audience, opts...)
}

// ClientID returns the client ID the assertions are issued for.
func (p *PrivateKeyJWT) ClientID() string { return p.clientID }

// Assertion returns a signed assertion: a fresh one, or with [WithReuse] the
// current one while enough of its lifetime is left.
func (p *PrivateKeyJWT) Assertion() (string, error) {
	if !p.cfg.reuse {
		return p.sign(p.cfg.now())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.now()
	if p.cached != "" && now.Before(p.cachedUntil) {
		return p.cached, nil
	}
	a, err := p.sign(now)
	if err != nil {
		return "", err
	}
	margin := max(p.cfg.lifetime/5, 5*time.Second)
	p.cached, p.cachedUntil = a, now.Add(p.cfg.lifetime-margin)
	return a, nil
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

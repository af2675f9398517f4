package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// opaqueSigner hides the concrete key type, as a KMS-backed signer does.
type opaqueSigner struct{ s crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.s.Sign(r, d, opts)
}

const issuer = "https://example.zitadel.cloud"

func verify(t *testing.T, assertion string, pub crypto.PublicKey, alg jwa.SignatureAlgorithm) (jwt.Token, jws.Headers) {
	t.Helper()
	tok, err := jwt.Parse([]byte(assertion), jwt.WithKey(alg, pub), jwt.WithValidate(false))
	if err != nil {
		t.Fatalf("verifying assertion: %v", err)
	}
	msg, err := jws.Parse([]byte(assertion))
	if err != nil {
		t.Fatal(err)
	}
	return tok, msg.Signatures()[0].ProtectedHeaders()
}

func TestAssertionClaims(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name   string
		signer crypto.Signer
		alg    jwa.SignatureAlgorithm
	}{
		{"RSA", testRSAKey(t), jwa.RS256()},
		{"RSA behind crypto.Signer", opaqueSigner{testRSAKey(t)}, jwa.RS256()},
		{"ECDSA P-384", ek, jwa.ES384()},
		{"Ed25519", edk, jwa.EdDSA()},
	}
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPrivateKeyJWT(tt.signer, "kid-1", "client-1", issuer, WithClock(func() time.Time { return now }))
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Assertion()
			if err != nil {
				t.Fatalf("Assertion() err = %v", err)
			}
			tok, hdr := verify(t, a, tt.signer.Public(), tt.alg)
			if kid, _ := hdr.KeyID(); kid != "kid-1" {
				t.Errorf("kid = %q, want kid-1", kid)
			}
			if alg, _ := hdr.Algorithm(); alg != tt.alg {
				t.Errorf("alg = %v, want %v", alg, tt.alg)
			}
			iss, _ := tok.Issuer()
			sub, _ := tok.Subject()
			aud, _ := tok.Audience()
			iat, _ := tok.IssuedAt()
			exp, _ := tok.Expiration()
			jti, _ := tok.JwtID()
			if iss != "client-1" || sub != "client-1" {
				t.Errorf("iss, sub = %q, %q; want client-1 for both", iss, sub)
			}
			if len(aud) != 1 || aud[0] != issuer {
				t.Errorf("aud = %q, want [%q] exactly", aud, issuer)
			}
			if !iat.Equal(now) || !exp.Equal(now.Add(DefaultLifetime)) {
				t.Errorf("iat, exp = %v, %v; want %v, %v", iat, exp, now, now.Add(DefaultLifetime))
			}
			if len(jti) < 16 {
				t.Errorf("jti = %q, want a random identifier", jti)
			}
		})
	}
}

func TestWithFreshAssertions(t *testing.T) {
	t.Parallel()
	p, err := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithFreshAssertions())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 5 {
		a, err := p.Assertion()
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := verify(t, a, testRSAKey(t).Public(), jwa.RS256())
		jti, _ := tok.JwtID()
		if seen[jti] {
			t.Fatalf("jti %q repeated with WithFreshAssertions", jti)
		}
		seen[jti] = true
	}
}

func TestAssertionReusedByDefault(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	p, err := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithLifetime(time.Minute), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := p.Assertion()
	now = now.Add(47 * time.Second) // 13 s left: more than a fifth (12 s)
	if again, _ := p.Assertion(); again != first {
		t.Errorf("Assertion() 47s later signed a new assertion, want the reused one")
	}
	now = now.Add(2 * time.Second) // 11 s left: renew
	renewed, _ := p.Assertion()
	if renewed == first {
		t.Errorf("Assertion() with under a fifth of the lifetime left reused the old assertion")
	}
	tok, _ := verify(t, renewed, testRSAKey(t).Public(), jwa.RS256())
	if iat, _ := tok.IssuedAt(); !iat.Equal(now) {
		t.Errorf("renewed iat = %v, want %v", iat, now)
	}
}

func TestNewPrivateKeyJWTRejects(t *testing.T) {
	t.Parallel()
	k := testRSAKey(t)
	tests := []struct {
		name                string
		signer              crypto.Signer
		client, aud, wantIn string
		opts                []Option
	}{
		{"nil signer", nil, "c", issuer, "nil signer", nil},
		{"no client", k, "", issuer, "client ID", nil},
		{"no audience", k, "c", "", "audience", nil},
		{"lifetime too long", k, "c", issuer, "lifetime", []Option{WithLifetime(2 * time.Hour)}},
		{"lifetime too short", k, "c", issuer, "lifetime", []Option{WithLifetime(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewPrivateKeyJWT(tt.signer, "k", tt.client, tt.aud, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("NewPrivateKeyJWT() err = %v, want it to mention %q", err, tt.wantIn)
			}
		})
	}
}

func TestAuthenticateClientSetsForm(t *testing.T) {
	t.Parallel()
	p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer)
	form := url.Values{}
	if err := p.AuthenticateClient(form, http.Header{}); err != nil {
		t.Fatal(err)
	}
	if got := form.Get("client_assertion_type"); got != AssertionType {
		t.Errorf("client_assertion_type = %q, want %q", got, AssertionType)
	}
	if strings.Count(form.Get("client_assertion"), ".") != 2 {
		t.Errorf("client_assertion = %q, want a compact JWS", form.Get("client_assertion"))
	}
}

func TestClientSecretBasic(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	c := ClientSecretBasic{ClientID: "api@proj", Secret: "s3cr:t/+"}
	if err := c.AuthenticateClient(url.Values{}, h); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h.Get("Authorization"), "Basic "))
	if err != nil {
		t.Fatal(err)
	}
	if want := "api%40proj:s3cr%3At%2F%2B"; string(raw) != want {
		t.Errorf("basic credentials = %q, want %q (form-urlencoded per RFC 6749 §2.3.1)", raw, want)
	}
	if err := (ClientSecretBasic{ClientID: "x"}).AuthenticateClient(url.Values{}, http.Header{}); err == nil {
		t.Errorf("AuthenticateClient() with empty secret succeeded")
	}
}

func BenchmarkAssertion(b *testing.B) {
	k := testRSAKey(b)
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"fresh", []Option{WithFreshAssertions()}}, {"reuse", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			p, _ := NewPrivateKeyJWT(k, "k", "c", issuer, bc.opts...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Assertion(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

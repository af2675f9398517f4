package introspect

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/clientauth"
)

// typicalBody is an introspection response as ZITADEL sends it for a
// service user's token with two roles.
const typicalBody = `{"active":true,"aud":["324508158914762739"],"client_id":"380480613558403728","exp":1796014083,"iat":1795970883,"iss":"https://acme.zitadel.cloud","jti":"386377907576631647","nbf":1795970883,"scope":"openid urn:zitadel:iam:org:project:id:324508158914762739:aud","sub":"380480613558403728","token_type":"Bearer","urn:zitadel:iam:org:project:324508158914762739:roles":{"admin":{"395938701309300119":"acme.zitadel.cloud"},"reader":{"395938701309300119":"acme.zitadel.cloud"}},"urn:zitadel:iam:org:project:roles":{"admin":{"395938701309300119":"acme.zitadel.cloud"},"reader":{"395938701309300119":"acme.zitadel.cloud"}},"urn:zitadel:iam:user:resourceowner:id":"395938701309300119","urn:zitadel:iam:user:resourceowner:name":"ACME","urn:zitadel:iam:user:resourceowner:primary_domain":"acme.zitadel.cloud","username":"svc"}`

// cannedTransport answers every request with typicalBody, in memory, so that
// a benchmark measures the client alone.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(typicalBody)), ContentLength: int64(len(typicalBody)), Request: r}, nil
}

// BenchmarkIntrospectMiss is the client's cost of one uncached introspection:
// signing the assertion (fresh, or reused), the form, decoding.
func BenchmarkIntrospectMiss(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opts []clientauth.Option
	}{{"assertion=fresh", []clientauth.Option{clientauth.WithFreshAssertions()}}, {"assertion=reused", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			auth, _ := clientauth.NewPrivateKeyJWT(key, "kid", "client", "https://acme.zitadel.cloud", bc.opts...)
			c, _ := New("https://acme.zitadel.cloud/oauth/v2/introspect", auth, WithoutCache(), WithHTTPClient(&http.Client{Transport: cannedTransport{}}))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Introspect(context.Background(), "token"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCacheKey measures hashing a token into its cache key.
func BenchmarkCacheKey(b *testing.B) {
	c, _ := New("https://acme.zitadel.cloud/oauth/v2/introspect", clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"})
	for _, n := range []int{64, 1024} {
		tok := strings.Repeat("t", n)
		b.Run(fmt.Sprintf("token=%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.key(tok)
			}
		})
	}
}

// BenchmarkDecode measures decoding a typical ZITADEL response.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode([]byte(typicalBody)); err != nil {
			b.Fatal(err)
		}
	}
}

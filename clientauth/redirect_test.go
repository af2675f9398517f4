package clientauth

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestJWTBearerFollowsNoRedirect: a token endpoint that redirects (307 and
// 308 make net/http send the body again, signed assertion included, to
// wherever Location points) gets its 3xx refused; the other listener
// receives nothing, and the error says where the redirect pointed and why
// it was not followed. The same holds for a caller's own HTTPClient, which
// is not changed.
func TestJWTBearerFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 || r.Method == http.MethodPost {
			stolen.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"from-the-thief","token_type":"Bearer","expires_in":60}`)
	}))
	t.Cleanup(thief.Close)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, own := range []bool{false, true} {
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, thief.URL+"/steal", code)
			}))
			j := &JWTBearer{Key: serviceUserKey(t), Issuer: issuer, TokenURL: redirector.URL + "/oauth/v2/token"}
			var hc *http.Client
			if own {
				hc = &http.Client{Timeout: 5 * time.Second}
				j.HTTPClient = hc
			}
			tok, err := j.Token(context.Background())
			redirector.Close()
			if err == nil {
				t.Errorf("%d (own client %v): got token %q, want an error", code, own, tok.AccessToken)
				continue
			}
			for _, want := range []string{"redirect", thief.URL + "/steal", "not followed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%d (own client %v): error %q does not say %q", code, own, err, want)
				}
			}
			if strings.Contains(err.Error(), "eyJ") {
				t.Errorf("%d: error carries the assertion: %q", code, err)
			}
			if hc != nil && hc.CheckRedirect != nil {
				t.Errorf("%d: the caller's HTTPClient was changed", code)
			}
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests, want none", n)
	}
}

// TestJWTBearerRefusesAPlainHTTPTokenEndpoint: an https issuer whose
// discovery document names a plain-http token endpoint on a host that is not
// loopback (ZITADEL behind a TLS proxy with ExternalSecure off) gets no
// token request: the signed assertion would cross the network in clear
// text. The error says what to change, and no request is sent.
func TestJWTBearerRefusesAPlainHTTPTokenEndpoint(t *testing.T) {
	t.Parallel()
	var dialed atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":"http://zitadel.example.com/oauth/v2/token"}`, srv.URL)
	}))
	t.Cleanup(srv.Close)
	hc := srv.Client()
	tr := hc.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != srv.Listener.Addr().String() {
			dialed.Add(1)
			return nil, fmt.Errorf("dial %s refused by the test", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc.Transport = tr
	j := &JWTBearer{Key: serviceUserKey(t), Issuer: srv.URL, HTTPClient: hc}
	_, err := j.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "plain http on a host that is not loopback") || !strings.Contains(err.Error(), "TokenURL") {
		t.Errorf("Token() = %v, want a refusal of the plain-http token endpoint that says what to change", err)
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("%d connections to the plain-http token endpoint, want none", n)
	}
}

func TestCheckTokenEndpoint(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		endpoint, issuer string
		ok               bool
	}{
		{"https://zitadel.example.com/oauth/v2/token", "https://zitadel.example.com", true},
		{"http://127.0.0.1:8080/oauth/v2/token", "https://zitadel.example.com", true},
		{"http://localhost:8080/oauth/v2/token", "https://zitadel.example.com", true},
		{"http://zitadel.example.com/oauth/v2/token", "https://zitadel.example.com", false},
		{"http://zitadel.internal:8080/oauth/v2/token", "http://zitadel.internal:8080", true}, // the caller chose plain http
		{"http://zitadel.corp:8080/oauth/v2/token", "http://localhost:8080", false},           // plain http on loopback only
		{"HTTP://zitadel.example.com/oauth/v2/token", "https://zitadel.example.com", false},
		{"ftp://zitadel.example.com/token", "https://zitadel.example.com", false},
		{"/oauth/v2/token", "https://zitadel.example.com", false},
		{"http://user:secret@zitadel.example.com/token", "https://zitadel.example.com", false},
	} {
		err := checkTokenEndpoint(tt.endpoint, tt.issuer)
		if (err == nil) != tt.ok {
			t.Errorf("checkTokenEndpoint(%q, %q) = %v, want ok %v", tt.endpoint, tt.issuer, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error repeats a password: %v", err)
		}
	}
}

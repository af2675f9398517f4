package clientauth

import (
	"context"
	"io"
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

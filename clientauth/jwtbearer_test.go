package clientauth

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// tokenEndpoint is a fake token endpoint that checks the jwt-bearer grant
// and answers with a new token valid for expiresIn seconds.
func tokenEndpoint(t *testing.T, expiresIn int, delay time.Duration) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.PostFormValue("grant_type") != GrantTypeJWTBearer {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		tok, _ := verify(t, r.PostFormValue("assertion"), testRSAKey(t).Public(), jwa.RS256())
		if sub, _ := tok.Subject(); sub != "user-1" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":%d}`, n, expiresIn)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func serviceUserKey(t *testing.T) *Key {
	t.Helper()
	der, _ := x509.MarshalPKCS8PrivateKey(testRSAKey(t))
	k, err := ParseKey(keyJSON(t, map[string]any{"type": "serviceaccount", "keyId": "k", "key": pemOf("PRIVATE KEY", der), "userId": "user-1"}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJWTBearerSharesOneToken: token sources and clients of one JWTBearer,
// called from many goroutines, make one token request (one signature) while
// the token is valid; a token within ExpiryDelta of its expiry is replaced.
func TestJWTBearerSharesOneToken(t *testing.T) {
	t.Parallel()
	srv, calls := tokenEndpoint(t, 3600, 20*time.Millisecond)
	j := &JWTBearer{Key: serviceUserKey(t), Issuer: issuer, TokenURL: srv.URL}
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]string, 40)
	for i := range 40 {
		wg.Go(func() {
			tok, err := j.TokenSource(ctx).Token() // a new source per call, as careless code does
			if err != nil {
				t.Errorf("Token() err = %v", err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("40 concurrent calls on 40 token sources made %d token requests, want 1", calls.Load())
	}
	for _, a := range got {
		if a != got[0] {
			t.Fatalf("sources got different tokens: %q and %q", a, got[0])
		}
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+got[0] {
			t.Errorf("Authorization = %q, want the shared token", r.Header.Get("Authorization"))
		}
	}))
	defer api.Close()
	for range 3 {
		resp, err := j.Client(ctx).Get(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if calls.Load() != 1 {
		t.Errorf("three clients made %d token requests in all, want 1", calls.Load())
	}

	// 30 s tokens are within the default 1 minute ExpiryDelta at once:
	// every call replaces them.
	short, shortCalls := tokenEndpoint(t, 30, 0)
	js := &JWTBearer{Key: serviceUserKey(t), Issuer: issuer, TokenURL: short.URL}
	a, _ := js.TokenSource(ctx).Token()
	b, _ := js.TokenSource(ctx).Token()
	if shortCalls.Load() != 2 || a.AccessToken == b.AccessToken {
		t.Errorf("tokens inside ExpiryDelta: %d requests, tokens %q and %q; want 2 requests, two tokens", shortCalls.Load(), a.AccessToken, b.AccessToken)
	}
	j10 := &JWTBearer{Key: serviceUserKey(t), Issuer: issuer, TokenURL: short.URL, ExpiryDelta: 10 * time.Second}
	c, _ := j10.TokenSource(ctx).Token()
	d, _ := j10.TokenSource(ctx).Token()
	if c.AccessToken != d.AccessToken || shortCalls.Load() != 3 {
		t.Errorf("ExpiryDelta 10s, 30 s tokens: %d requests, want 3 (one more, then shared)", shortCalls.Load())
	}
}

// TestJWTBearerWaiterLeavesWithItsContext: a caller waiting for another's
// token request gives up when its own context ends.
func TestJWTBearerWaiterLeavesWithItsContext(t *testing.T) {
	t.Parallel()
	srv, _ := tokenEndpoint(t, 3600, 300*time.Millisecond)
	j := &JWTBearer{Key: serviceUserKey(t), Issuer: issuer, TokenURL: srv.URL}
	done := make(chan error, 1)
	go func() {
		_, err := j.TokenSource(context.Background()).Token()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := j.TokenSource(ctx).Token(); err == nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("waiter with a 20 ms context: err = %v after %v, want an error well before the 300 ms request ends", err, time.Since(start))
	}
	if err := <-done; err != nil {
		t.Errorf("the first caller's Token() err = %v", err)
	}
}

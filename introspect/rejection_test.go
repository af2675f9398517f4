package introspect_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
)

// jtiCheckingAS is an introspection endpoint that verifies the client
// assertion and, with refuseReplays, refuses a jti it has seen before (as
// servers enforcing RFC 7523 §3 item 7 do); with refuseAll it refuses every
// assertion, as for a deleted key.
type jtiCheckingAS struct {
	*httptest.Server
	requests, refused atomic.Int64

	mu   sync.Mutex // guards seen
	seen map[string]bool
}

func newJTICheckingAS(t *testing.T, key *rsa.PrivateKey, refuseReplays, refuseAll bool) *jtiCheckingAS {
	t.Helper()
	as := &jtiCheckingAS{seen: map[string]bool{}}
	as.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.requests.Add(1)
		tok, err := jwt.Parse([]byte(r.PostFormValue("client_assertion")), jwt.WithKey(jwa.RS256(), &key.PublicKey))
		jti, _ := tok.JwtID()
		as.mu.Lock()
		replay := as.seen[jti]
		as.seen[jti] = true
		as.mu.Unlock()
		if err != nil || refuseAll || refuseReplays && replay {
			as.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"client assertion refused"}`)
			return
		}
		time.Sleep(5 * time.Millisecond) // let concurrent calls overlap
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"active":true,"aud":"p","sub":"u","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(as.Close)
	return as
}

var (
	rejKeyOnce sync.Once
	rejKey     *rsa.PrivateKey
)

func rejectionKey(t *testing.T) *rsa.PrivateKey {
	rejKeyOnce.Do(func() {
		var err error
		if rejKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rejKey
}

// TestServerRefusingReusedAssertionsStillAnswers: against a server that
// refuses a replayed jti, every call gets its answer, one after another and
// 16 at once: a refused reused assertion gets one retry with a fresh one,
// and from then on each request carries a fresh assertion.
func TestServerRefusingReusedAssertionsStillAnswers(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 16} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			t.Parallel()
			as := newJTICheckingAS(t, rejectionKey(t), true, false)
			auth, err := clientauth.NewPrivateKeyJWT(rejectionKey(t), "kid", "api", as.URL, clientauth.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			c, err := introspect.New(as.URL, auth, introspect.WithoutCache())
			if err != nil {
				t.Fatal(err)
			}
			for round := range 4 {
				var wg sync.WaitGroup
				for i := range conc {
					wg.Go(func() {
						if _, err := c.Introspect(context.Background(), fmt.Sprintf("tok-%d-%d", round, i)); err != nil {
							t.Errorf("Introspect() round %d err = %v, want an answer", round, err)
						}
					})
				}
				wg.Wait()
			}
			if n := as.requests.Load() - as.refused.Load(); n != int64(4*conc) {
				t.Errorf("%d answered requests, want %d", n, 4*conc)
			}
			if r := as.refused.Load(); r < 1 || r > int64(conc) {
				t.Errorf("%d refusals, want 1 to %d: refusals only for the one reused assertion", r, conc)
			}
		})
	}
}

// TestRefusedFreshAssertionIsNotRetried: a server that refuses every
// assertion (a deleted key) gets one retry for a refused reused assertion,
// then one request per call: ErrClientAuth, no retry loop.
func TestRefusedFreshAssertionIsNotRetried(t *testing.T) {
	t.Parallel()
	as := newJTICheckingAS(t, rejectionKey(t), false, true)
	auth, _ := clientauth.NewPrivateKeyJWT(rejectionKey(t), "kid", "api", as.URL, clientauth.WithLogger(slog.New(slog.DiscardHandler)))
	c, _ := introspect.New(as.URL, auth, introspect.WithoutCache(), introspect.WithCircuitBreaker(0, 0))
	for i := range 5 {
		if _, err := c.Introspect(context.Background(), fmt.Sprintf("tok-%d", i)); !errors.Is(err, introspect.ErrClientAuth) {
			t.Fatalf("Introspect() err = %v, want ErrClientAuth", err)
		}
	}
	// The first assertion was used once (no retry); the second call reused
	// it (one retry, then fresh assertions): 1 + 2 + 1 + 1 + 1 requests.
	if n := as.requests.Load(); n != 6 {
		t.Errorf("5 refused calls made %d requests, want 6", n)
	}
}

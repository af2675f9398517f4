package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
)

// TestWatchersEndWhenTheConfirmationFails: a JWT revoked at the server
// before its first use here is decided locally, and a stream opens on that
// provisional decision. When its confirmation gets no answer (the server
// fails, or every in-flight slot is taken by an attacker's junk tokens on a
// slow server), the decision is dropped, and the stream opened on it ends:
// an outage fails closed, for streams as for requests.
func TestWatchersEndWhenTheConfirmationFails(t *testing.T) {
	t.Parallel()
	for _, flood := range []bool{false, true} {
		t.Run(map[bool]string{false: "server fails", true: "slots taken"}[flood], func(t *testing.T) {
			t.Parallel()
			as, clk := startJWTAS(t), newClock()
			var opts []introspect.Option
			if flood {
				opts = append(opts, introspect.WithMaxInFlight(2, 250*time.Millisecond))
			}
			c := localClient(t, as, clk, opts...)
			ctx := context.Background()
			claims := as.claims(clk.Now())
			as.revoke(claims["jti"].(string))
			tok := as.sign(t, "k1", jwa.RS256(), claims)
			hold := make(chan struct{})
			as.setBlock(hold)
			defer func() {
				select {
				case <-hold:
				default:
					close(hold)
				}
			}()
			if flood {
				for i := range 2 {
					go func() { _, _ = c.Introspect(ctx, fmt.Sprintf("junk%d", i)) }()
				}
				eventually(t, "the junk tokens' introspections", func() bool { return as.introspections.Load() == 2 })
			} else {
				as.setStatus(http.StatusServiceUnavailable)
			}
			r, err := c.Introspect(ctx, tok)
			if err != nil {
				t.Fatalf("the local decision: %v", err)
			}
			invalidated, stop := c.Watch(tok, r)
			defer stop()
			if !flood {
				close(hold) // the confirmation's answer: 503
			}
			eventually(t, "the failed confirmation", func() bool { _, ok := c.Cached(ctx, tok); return !ok })
			select {
			case <-invalidated:
			case <-time.After(5 * time.Second):
				t.Fatal("the stream opened on the local decision still runs after its confirmation failed")
			}
			if flood {
				close(hold)
			}
			as.setStatus(0)
			if _, err := c.Introspect(ctx, tok); !errors.Is(err, introspect.ErrInactive) {
				t.Errorf("the next request: %v, want the server's inactive", err)
			}
		})
	}
}

// TestWatchersEndOnAnInactiveAnswer: a token revoked at the server without
// an event keeps its cached answer until the max TTL; the next
// introspection answers inactive, and the streams still open on the token
// end then, not at its exp.
func TestWatchersEndOnAnInactiveAnswer(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c, err := introspect.New(as.issuer()+"/introspect", clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"},
		introspect.WithClock(clk.Now), introspect.WithRetries(0, 0), introspect.WithCircuitBreaker(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	claims := as.claims(clk.Now())
	tok := as.sign(t, "k1", jwa.RS256(), claims)
	r, err := c.Introspect(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	invalidated, stop := c.Watch(tok, r)
	defer stop()
	as.revoke(claims["jti"].(string)) // at the server, no event
	clk.Advance(introspect.DefaultMaxTTL + time.Second)
	if _, err := c.Introspect(ctx, tok); !errors.Is(err, introspect.ErrInactive) {
		t.Fatalf("after the max TTL: %v, want inactive", err)
	}
	select {
	case <-invalidated:
	case <-time.After(5 * time.Second):
		t.Error("the server answered inactive for the token, and the stream watching it still runs")
	}
}

// TestWatchersEndOnAnInactiveAnswerThatIsNotCached: an inactive answer
// that may not be cached (its request was in the air during a Purge) still
// ends the streams open on the token: the server no longer accepts it,
// whichever request asked.
func TestWatchersEndOnAnInactiveAnswerThatIsNotCached(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			<-release // the first request answers last: the token was revoked meanwhile
			_, _ = io.WriteString(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"sub":"alice","aud":["%s"],"exp":%d}`, project, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(srv.Close)
	c, err := introspect.New(srv.URL+"/introspect", clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"},
		introspect.WithRetries(0, 0), introspect.WithCircuitBreaker(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := c.Introspect(ctx, "tok"); first <- err }()
	eventually(t, "the first request at the server", func() bool { return n.Load() == 1 })
	c.Purge() // the first request's answer may no longer be cached
	r, err := c.Introspect(ctx, "tok")
	if err != nil {
		t.Fatal(err)
	}
	invalidated, stop := c.Watch("tok", r)
	defer stop()
	close(release)
	if err := <-first; !errors.Is(err, introspect.ErrInactive) {
		t.Fatalf("the first request: %v, want inactive", err)
	}
	select {
	case <-invalidated:
	case <-time.After(5 * time.Second):
		t.Error("the server answered inactive for the token, and the stream watching it still runs")
	}
}

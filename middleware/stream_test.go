package middleware_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// sseServer serves, on a real loopback server, /events through mw.Stream
// and /poll through mw.Require: both send a tick every 20 ms until their
// context ends, then report the context's cause on causes.
func sseServer(t *testing.T, mw *middleware.Middleware) (srv *httptest.Server, causes chan error) {
	t.Helper()
	causes = make(chan error, 8)
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := fmt.Fprint(w, "data: tick\n\n"); err != nil {
				causes <- err
				return
			}
			_ = rc.Flush()
			select {
			case <-r.Context().Done():
				causes <- context.Cause(r.Context())
				return
			case <-tick.C:
			}
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/events", mw.Stream()(events))
	mux.Handle("/poll", mw.Require()(events))
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, causes
}

// openStream starts a request and returns a channel closed when its body
// ends, after the first event arrived.
func openStream(t *testing.T, ctx context.Context, url, token string) <-chan struct{} {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "data: tick" {
		resp.Body.Close()
		t.Fatalf("GET %s: first line %q, want an event", url, sc.Text())
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		for sc.Scan() {
		}
	}()
	return ended
}

func waitEnd(t *testing.T, ended <-chan struct{}, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-ended:
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("%s: the stream is still open after %v", what, within)
		return 0
	}
}

func wantCause(t *testing.T, causes <-chan error, sentinel error) {
	t.Helper()
	select {
	case err := <-causes:
		var e *middleware.Error
		if !errors.As(err, &e) || e.StatusCode != 401 || e.Code != middleware.CodeInvalidToken || !errors.Is(err, sentinel) {
			t.Errorf("the handler's context ended with %v, want a 401 invalid_token *Error wrapping %v", err, sentinel)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("the handler did not end")
	}
}

// TestStreamEndsWhenInvalidated: a revoked user's open stream ends within a
// second, whatever invalidated the decision; an ordinary route's request is
// left alone.
func TestStreamEndsWhenInvalidated(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		invalidate func(c *introspect.Client, token, sub string)
	}{
		{"subject", func(c *introspect.Client, _, sub string) { c.InvalidateSubject(sub) }},
		{"token", func(c *introspect.Client, token, _ string) { c.Invalidate(token) }},
		{"purge", func(c *introspect.Client, _, _ string) { c.Purge() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, project)
			srv, causes := sseServer(t, s.mw)
			sub := "user-" + tt.name
			tok := s.mint(fakeas.Token{Subject: sub})
			other := s.mint(fakeas.Token{Subject: "bystander"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ended := openStream(t, ctx, srv.URL+"/events", tok)
			bystander := openStream(t, ctx, srv.URL+"/events", other)
			poll := openStream(t, ctx, srv.URL+"/poll", tok)

			tt.invalidate(s.client, tok, sub)
			if d := waitEnd(t, ended, time.Second, "after invalidation"); d > time.Second {
				t.Errorf("the stream ended %v after the invalidation, want within a second", d)
			}
			wantCause(t, causes, middleware.ErrRevoked)
			select {
			case <-poll:
				t.Errorf("a request on an ordinary route (Require) ended with the invalidation")
			case <-time.After(100 * time.Millisecond):
			}
			if tt.name != "purge" {
				select {
				case <-bystander:
					t.Errorf("another user's stream ended with this one's invalidation")
				default:
				}
			}
		})
	}
}

// TestStreamEndsAtExpiry: a stream ends when its token's exp passes, even
// though nothing asks the server again.
func TestStreamEndsAtExpiry(t *testing.T) {
	t.Parallel()
	s := newStack(t, project, middleware.WithLeeway(0))
	srv, causes := sseServer(t, s.mw)
	exp := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second) // exp has whole seconds
	if time.Until(exp) < 300*time.Millisecond {
		exp = exp.Add(time.Second)
	}
	tok := s.mint(fakeas.Token{Expiry: exp})
	ended := openStream(t, context.Background(), srv.URL+"/events", tok)
	waitEnd(t, ended, time.Until(exp)+time.Second, "at expiry")
	if early := time.Until(exp); early > 50*time.Millisecond {
		t.Errorf("the stream ended %v before exp", early)
	}
	wantCause(t, causes, middleware.ErrExpired)
	if n := s.as.Calls(); n != 1 {
		t.Errorf("introspections = %d, want 1", n)
	}
}

// TestWatchSeesInvalidationBeforeIt: a user locked (the server now calls the
// token inactive, and an event invalidates the subject) between the check
// and the start of the watch still ends the context; an invalidation after
// which the server still accepts the token does not.
func TestWatchSeesInvalidationBeforeIt(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{Subject: "late"})
	ctx, err := s.mw.Check(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	s.client.InvalidateSubject("late") // the server still accepts the token
	wctx, cancel := s.mw.Watch(ctx)
	if wctx.Err() != nil {
		t.Errorf("Watch after an invalidation that the server overrules: done (%v)", context.Cause(wctx))
	}
	cancel()

	s.as.Revoke(tok)
	s.client.InvalidateSubject("late")
	wctx, cancel = s.mw.Watch(ctx)
	defer cancel()
	select {
	case <-wctx.Done():
		if !errors.Is(context.Cause(wctx), middleware.ErrRevoked) {
			t.Errorf("cause = %v, want ErrRevoked", context.Cause(wctx))
		}
	case <-time.After(time.Second):
		t.Fatal("Watch after an invalidation: context still open")
	}

	// Without any invalidation, the context ends only with its CancelFunc.
	other := s.mint(fakeas.Token{Subject: "calm"})
	ctx, err = s.mw.Check(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel2 := s.mw.Watch(ctx)
	select {
	case <-wctx.Done():
		t.Fatalf("Watch ended without reason: %v", context.Cause(wctx))
	case <-time.After(50 * time.Millisecond):
	}
	cancel2()
	if !errors.Is(context.Cause(wctx), context.Canceled) {
		t.Errorf("cause after the CancelFunc = %v, want context.Canceled", context.Cause(wctx))
	}
}

// plainIntrospector is an Introspector without a cache or watchers.
type plainIntrospector struct{ resp *introspect.Response }

func (p plainIntrospector) Introspect(context.Context, string) (*introspect.Response, error) {
	return p.resp, nil
}

func TestWatchWithoutClaimsOrWatcher(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(1200 * time.Millisecond).Unix()
	resp, err := introspect.Decode(fmt.Appendf(nil, `{"active":true,"aud":"p","sub":"u","exp":%d}`, exp))
	if err != nil {
		t.Fatal(err)
	}
	mw, err := middleware.New(plainIntrospector{resp}, "p", middleware.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	// Anonymous: nothing to watch.
	wctx, cancel := mw.Watch(context.Background())
	if wctx.Err() != nil {
		t.Errorf("Watch(anonymous) is done: %v", wctx.Err())
	}
	cancel()

	// An Introspector that reports no invalidations: expiry alone.
	ctx, e := mw.Check(context.Background(), "tok")
	if e != nil {
		t.Fatal(e)
	}
	wctx, cancel = mw.Watch(ctx)
	defer cancel()
	select {
	case <-wctx.Done():
		if !errors.Is(context.Cause(wctx), middleware.ErrExpired) {
			t.Errorf("cause = %v, want ErrExpired", context.Cause(wctx))
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Watch did not end at exp")
	}

	// Claims from NewContext whose expiry has passed: done at once.
	past := middleware.NewContext(context.Background(), &middleware.Claims{Subject: "u", Expiry: time.Now().Add(-time.Minute)})
	wctx, cancel = mw.Watch(past)
	defer cancel()
	if !errors.Is(context.Cause(wctx), middleware.ErrExpired) {
		t.Errorf("Watch(expired claims) cause = %v, want ErrExpired", context.Cause(wctx))
	}
}

// TestStreamRefusesLikeRequire: Stream decides as Require does.
func TestStreamRefusesLikeRequire(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	h := s.mw.Stream(middleware.Role("admin"))(http.HandlerFunc(whoami))
	reader := s.mint(fakeas.Token{Roles: map[string]map[string]string{"reader": {"o": "d"}}})
	admin := s.mint(fakeas.Token{Roles: map[string]map[string]string{"admin": {"o": "d"}}})
	for _, tt := range []struct {
		header string
		want   int
	}{{"", 401}, {"Bearer a,b", 400}, {"Bearer " + reader, 403}, {"Bearer " + admin, 200}} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Stream with %q = %d, want %d", strings.Split(tt.header, " ")[0], rec.Code, tt.want)
		}
	}
}

// BenchmarkStream is what a watched request costs over Require: the watch's
// context, timer, goroutine and watcher.
func BenchmarkStream(b *testing.B) {
	s := newStack(b, project)
	tok := s.mint(fakeas.Token{})
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := discardWriter{h: http.Header{}}
	for name, h := range map[string]http.Handler{"require": s.mw.Require()(bare), "stream": s.mw.Stream()(bare)} {
		h.ServeHTTP(w, req) // warm the cache
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}

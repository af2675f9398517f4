package exampletest

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

// Events checks GET /api/events, the protected Server-Sent Events stream:
// one "data: tick" every 100 ms, ended when the token expires or is
// invalidated. newHandler builds the example's handler on guard.
func Events(t *testing.T, newHandler func(t *testing.T, guard *tokenguard.Guard) http.Handler) {
	s := NewStack(t)
	// No leeway, so that the expiry test need not wait 5 s past exp.
	guard, err := exampleapp.NewGuard(context.Background(), s.Config, exampleapp.DiscardLogs(), middleware.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(t, guard))
	t.Cleanup(srv.Close)
	mint := func(sub string, exp time.Time) string {
		return s.AS.Mint(fakeas.Token{Subject: sub, Audience: []string{ProjectID}, Expiry: exp})
	}

	// open starts the stream and returns its lines, after checking the
	// response's head.
	open := func(t *testing.T, token string) (*bufio.Scanner, func()) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("GET /api/events = %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return bufio.NewScanner(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	// ticks reads n "data: tick" events.
	ticks := func(t *testing.T, sc *bufio.Scanner, n int) {
		t.Helper()
		for got := 0; got < n; {
			if !sc.Scan() {
				t.Fatalf("stream ended after %d ticks (%v), want %d", got, sc.Err(), n)
			}
			switch line := sc.Text(); {
			case line == "data: tick":
				got++
			case line == "":
			default:
				t.Fatalf("stream line %q, want data: tick", line)
			}
		}
	}
	// endsWithin fails unless the stream ends within d.
	endsWithin := func(t *testing.T, sc *bufio.Scanner, d time.Duration) {
		t.Helper()
		done := make(chan []string, 1)
		go func() {
			var rest []string
			for sc.Scan() {
				if l := sc.Text(); l != "" && l != "data: tick" {
					rest = append(rest, l)
				}
			}
			done <- rest
		}()
		select {
		case rest := <-done:
			for _, l := range rest {
				if !strings.HasPrefix(l, ": ") { // only a comment may follow the ticks
					t.Errorf("stream ended with %q, want only ticks and a comment", l)
				}
			}
		case <-time.After(d):
			t.Fatalf("stream still open %v later", d)
		}
	}

	t.Run("ticks every 100 ms", func(t *testing.T) {
		sc, closeStream := open(t, mint("user-1", time.Time{}))
		defer closeStream()
		start := time.Now()
		ticks(t, sc, 4)
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("4 ticks in %v, want one every 100 ms", d)
		}
	})
	t.Run("protected", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/api/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET /api/events without a token = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("ends when the subject is invalidated", func(t *testing.T) {
		tok := mint("user-2", time.Time{})
		sc, closeStream := open(t, tok)
		defer closeStream()
		ticks(t, sc, 2)
		s.AS.Revoke(tok) // the user is locked; the API hears of it
		guard.InvalidateSubject("user-2")
		endsWithin(t, sc, time.Second)
	})
	t.Run("ends when the token is invalidated", func(t *testing.T) {
		tok := mint("user-3", time.Time{})
		sc, closeStream := open(t, tok)
		defer closeStream()
		ticks(t, sc, 1)
		s.AS.Revoke(tok)
		guard.Invalidate(tok)
		endsWithin(t, sc, time.Second)
	})
	t.Run("ends when the token expires", func(t *testing.T) {
		sc, closeStream := open(t, mint("user-4", time.Now().Add(1500*time.Millisecond)))
		defer closeStream()
		ticks(t, sc, 1)
		endsWithin(t, sc, 3*time.Second)
	})
}

package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

// A decision invalidated between the check and the watch, while the
// authorization server is down, ends the watched request: outages fail
// closed, and the decision it was opened on may be revoked.
func TestWatchAfterInvalidationWhileServerIsDown(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{Subject: "alice"})
	ctx, e := s.mw.Check(context.Background(), tok)
	if e != nil {
		t.Fatal(e)
	}
	s.client.InvalidateSubject("alice")
	s.as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true })
	wctx, stop := s.mw.Watch(ctx)
	defer stop()
	select {
	case <-wctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the watched request stayed open after its decision was invalidated, with the server down")
	}
	var me *middleware.Error
	if cause := context.Cause(wctx); !errors.As(cause, &me) || me.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("cause = %v, want a 503 *Error", cause)
	}
}

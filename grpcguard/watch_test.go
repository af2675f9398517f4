package grpcguard_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// endsWithin drains s and fails unless it ends with code within d.
func endsWithin(t *testing.T, s grpc.ClientStream, d time.Duration, code codes.Code, msgIn string) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- drain(s) }()
	select {
	case err := <-done:
		st := status.Convert(err)
		if st.Code() != code {
			t.Fatalf("stream ended with %v %q after %v, want %v", st.Code(), st.Message(), time.Since(start), code)
		}
		if !strings.Contains(st.Message(), msgIn) {
			t.Errorf("stream ended with %q, want it to mention %q", st.Message(), msgIn)
		}
	case <-time.After(d):
		t.Fatalf("stream still running %v later, want it ended with %v", d, code)
	}
}

func TestStreamEndsWhenSubjectInvalidated(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, policy...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := w.token(t, w.admin, devserver.TokenOptions{})
	reader := w.token(t, w.reader, devserver.TokenOptions{})
	s, sub, err := openStream(ctx, conn, mStream, "Bearer "+admin)
	if err != nil || sub != w.admin.UserID {
		t.Fatalf("open stream = %q, %v; want %q", sub, err, w.admin.UserID)
	}
	other, _, err := openStream(ctx, conn, mStream, "Bearer "+reader)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // the stream is live
		if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			t.Fatalf("RecvMsg = %v", err)
		}
	}
	// The user is locked in ZITADEL; its event reaches the API, which
	// invalidates the subject.
	if err := w.srv.LockUser(w.admin.UserID, true); err != nil {
		t.Fatal(err)
	}
	guard.InvalidateSubject(w.admin.UserID)
	endsWithin(t, s, time.Second, codes.Unauthenticated, "")

	// The other user's stream goes on.
	for range 5 {
		if err := other.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			t.Fatalf("the other user's stream: RecvMsg = %v, want it still running", err)
		}
	}
	// And the locked user cannot open a new one.
	if _, _, err := openStream(ctx, conn, mStream, "Bearer "+admin); status.Code(err) != codes.Unauthenticated {
		t.Errorf("open stream after the lock = %v, want Unauthenticated", err)
	}
}

func TestStreamEndsWhenTokenInvalidated(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, policy...))
	tok := w.token(t, w.admin, devserver.TokenOptions{})
	s, _, err := openStream(context.Background(), conn, mAdminStream, "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.srv.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	guard.Invalidate(tok)
	endsWithin(t, s, time.Second, codes.Unauthenticated, "")
}

// TestStreamEndsWithARudeHandler: a handler that ignores its context is
// still cut off, at its next send.
func TestStreamEndsWithARudeHandler(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, policy...))
	tok := w.token(t, w.reader, devserver.TokenOptions{})
	s, _, err := openStream(context.Background(), conn, mRudeStream, "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	guard.Invalidate(tok)
	endsWithin(t, s, time.Second, codes.Unauthenticated, "")
}

func TestStreamEndsWhenTokenExpires(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	conn := serve(t, mustGuard(t, w.guard(t, middleware.WithLeeway(0)).Middleware, policy...))
	tok := w.token(t, w.reader, devserver.TokenOptions{Lifetime: 2 * time.Second})
	s, _, err := openStream(context.Background(), conn, mStream, "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	endsWithin(t, s, 4*time.Second, codes.Unauthenticated, "expired")
}

func TestWithoutStreamWatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, append(policy, grpcguard.WithoutStreamWatch())...))
	tok := w.token(t, w.admin, devserver.TokenOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _, err := openStream(ctx, conn, mStream, "Bearer "+tok)
	if err != nil {
		t.Fatal(err)
	}
	guard.InvalidateSubject(w.admin.UserID)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			t.Fatalf("unwatched stream ended with %v after the invalidation, want it running", err)
		}
	}
	// New calls are still checked.
	if _, err := unary(ctx, conn, mUnary, "Bearer "+tok); err != nil {
		t.Errorf("unary after the invalidation = %v, want OK (the user is not locked)", err)
	}
}

// TestBidiMessageAfterInvalidationNeverReachesTheHandler: a handler waiting
// in RecvMsg when the token is invalidated never gets the revoked caller's
// next message; the stream ends with Unauthenticated.
func TestBidiMessageAfterInvalidationNeverReachesTheHandler(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, policy...))
	tok := w.token(t, w.admin, devserver.TokenOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := conn.NewStream(withAuth(ctx, "Bearer "+tok), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.v1.Svc/Echo")
	if err != nil {
		t.Fatal(err)
	}
	before, after := "before-"+t.Name(), "after-"+t.Name()
	if err := s.SendMsg(wrapperspb.String(before)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
		t.Fatalf("echo before the invalidation: %v", err)
	}
	// The handler now waits in RecvMsg.
	if err := w.srv.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	guard.Invalidate(tok)
	time.Sleep(100 * time.Millisecond) // let the watch end the stream's context
	_ = s.SendMsg(wrapperspb.String(after))
	endsWithin(t, s, time.Second, codes.Unauthenticated, "")
	if _, got := echoed.Load(after); got {
		t.Error("the handler received a message the revoked caller sent after the invalidation")
	}
	if _, got := echoed.Load(before); !got {
		t.Error("the handler never received the message sent before the invalidation")
	}
}

// TestStreamRequirementsCheckedAgainAtWatchStart: the admin role is taken
// away and the subject invalidated after the stream's decision but before
// its watch starts (the requirement below stands in for a webhook landing in
// that window). The decision made again when the watch starts applies the
// method's requirements too, so AdminStream ends at once, as an HTTP Stream
// route does.
func TestStreamRequirementsCheckedAgainAtWatchStart(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	var once sync.Once
	removeAdmin := func(context.Context, *middleware.Claims) error {
		once.Do(func() {
			if err := w.srv.SetRoles(w.admin.UserID, w.project.ID, "reader"); err != nil {
				t.Error(err)
			}
			guard.InvalidateSubject(w.admin.UserID)
		})
		return nil
	}
	conn := serve(t, mustGuard(t, guard.Middleware, grpcguard.WithMethod(mAdminStream, middleware.Role("admin"), removeAdmin)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _, err := openStream(ctx, conn, mAdminStream, "Bearer "+w.token(t, w.admin, devserver.TokenOptions{}))
	if err != nil { // ended before its first message
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "no longer accepted") {
			t.Fatalf("AdminStream ended with %v %q, want Unauthenticated: no longer accepted", st.Code(), st.Message())
		}
		return
	}
	endsWithin(t, s, 5*time.Second, codes.Unauthenticated, "no longer accepted")
}

package grpcguard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// want is how a call must end.
type want struct {
	code   codes.Code
	msgIn  string // substring of the status message
	reason string // google.rpc.ErrorInfo reason, "" for none
	retry  bool   // a google.rpc.RetryInfo detail
}

// check compares err with w, for a call named call.
func check(t *testing.T, call string, err error, w want) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != w.code || !strings.Contains(st.Message(), w.msgIn) {
		t.Fatalf("%s = %v %q, want %v with %q", call, st.Code(), st.Message(), w.code, w.msgIn)
	}
	var reason string
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.Reason
			if d.Domain != grpcguard.ErrorInfoDomain {
				t.Errorf("%s ErrorInfo domain = %q", call, d.Domain)
			}
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if reason != w.reason {
		t.Errorf("%s ErrorInfo reason = %q, want %q", call, reason, w.reason)
	}
	if w.retry && (retry == nil || retry.GetRetryDelay().AsDuration() <= 0) {
		t.Errorf("%s details = %v, want a RetryInfo with a positive delay", call, st.Details())
	}
	if !w.retry && retry != nil {
		t.Errorf("%s has a RetryInfo %v", call, retry)
	}
}

// call makes a unary call or opens a stream of the same kind of method,
// and returns how it ended (nil: accepted, with the subject the handler saw).
type caller func(ctx context.Context, conn *grpc.ClientConn, unaryMethod string, auth ...string) (string, error)

var kinds = map[string]caller{
	"unary": unary,
	"stream": func(ctx context.Context, conn *grpc.ClientConn, method string, auth ...string) (string, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // the client leaves
		_, sub, err := openStream(ctx, conn, streamOf[method], auth...)
		return sub, err
	},
}

// streamOf maps each unary test method to its stream twin with the same
// policy.
var streamOf = map[string]string{mUnary: mStream, mAdmin: mAdminStream, mPublic: mPubStream, mScoped: mScopedStrm}

func TestStatusCodes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	conn := serve(t, mustGuard(t, w.guard(t).Middleware, policy...))
	admin := w.token(t, w.admin, devserver.TokenOptions{})
	reader := w.token(t, w.reader, devserver.TokenOptions{})
	scoped := w.token(t, w.reader, devserver.TokenOptions{Scopes: []string{"profile"}})
	otherProject := w.srv.CreateProject("other")
	foreign := w.token(t, w.admin, devserver.TokenOptions{ProjectIDs: []string{otherProject.ID}})
	revoked := w.token(t, w.admin, devserver.TokenOptions{})
	if err := w.srv.Revoke(revoked); err != nil {
		t.Fatal(err)
	}
	hint := "urn:zitadel:iam:org:project:id:" + w.project.ID + ":aud"

	tests := []struct {
		name   string
		method string
		auth   []string
		want   want   // code OK: accepted
		sub    string // with OK: the subject the handler saw
	}{
		{"public without a token", mPublic, nil, want{code: codes.OK}, ""},
		{"public ignores a bad token", mPublic, []string{"Bearer not,a,token"}, want{code: codes.OK}, ""},
		{"valid token", mUnary, []string{"Bearer " + reader}, want{code: codes.OK}, w.reader.UserID},
		{"scheme is case-insensitive", mUnary, []string{"bearer " + reader}, want{code: codes.OK}, w.reader.UserID},
		{"role present", mAdmin, []string{"Bearer " + admin}, want{code: codes.OK}, w.admin.UserID},
		{"scope present", mScoped, []string{"Bearer " + scoped}, want{code: codes.OK}, w.reader.UserID},

		{"no token", mUnary, nil, want{code: codes.Unauthenticated, msgIn: "missing bearer token"}, ""},
		{"empty metadata", mUnary, []string{""}, want{code: codes.Unauthenticated}, ""},
		{"another scheme", mUnary, []string{"Basic dXNlcjpwYXNz"}, want{code: codes.Unauthenticated}, ""},
		{"two tokens", mUnary, []string{"Bearer " + reader, "Bearer " + admin}, want{codes.InvalidArgument, "more than one", "INVALID_REQUEST", false}, ""},
		{"oversized", mUnary, []string{"Bearer " + strings.Repeat("x", 9<<10)}, want{codes.InvalidArgument, "8 KiB", "INVALID_REQUEST", false}, ""},
		{"not a b64token", mUnary, []string{"Bearer not,a,token"}, want{codes.InvalidArgument, "b64token", "INVALID_REQUEST", false}, ""},
		{"scheme without token", mUnary, []string{"Bearer "}, want{codes.InvalidArgument, "", "INVALID_REQUEST", false}, ""},
		{"unknown token", mUnary, []string{"Bearer unknown"}, want{codes.Unauthenticated, hint, "INVALID_TOKEN", false}, ""},
		{"revoked", mUnary, []string{"Bearer " + revoked}, want{codes.Unauthenticated, "not active", "INVALID_TOKEN", false}, ""},
		{"audience of another project names the scope", mUnary, []string{"Bearer " + foreign}, want{codes.Unauthenticated, hint, "INVALID_TOKEN", false}, ""},
		{"missing role", mAdmin, []string{"Bearer " + reader}, want{codes.PermissionDenied, `"admin"`, "INSUFFICIENT_SCOPE", false}, ""},
		{"missing scope", mScoped, []string{"Bearer " + reader}, want{codes.PermissionDenied, `scope "profile"`, "INSUFFICIENT_SCOPE", false}, ""},
	}
	for kind, call := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					sub, err := call(ctx, conn, tt.method, tt.auth...)
					name := kind + " " + tt.method
					if tt.want.code == codes.OK {
						if err != nil || sub != tt.sub {
							t.Fatalf("%s = %q, %v; want %q, OK", name, sub, err, tt.sub)
						}
						return
					}
					check(t, name, err, tt.want)
				})
			}
		})
	}
}

func mustGuard(t testing.TB, m *middleware.Middleware, opts ...grpcguard.Option) *grpcguard.Guard {
	t.Helper()
	g, err := grpcguard.New(m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestExpired uses a guard whose clock runs a day ahead: every token the
// server issues (12 h lifetime) has expired for it, though the server still
// answers active.
func TestExpired(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ahead := func() time.Time { return time.Now().Add(24 * time.Hour) }
	conn := serve(t, mustGuard(t, w.guard(t, middleware.WithClock(ahead)).Middleware, policy...))
	tok := w.token(t, w.reader, devserver.TokenOptions{})
	for kind, call := range kinds {
		_, err := call(context.Background(), conn, mUnary, "Bearer "+tok)
		check(t, kind+" with an expired token", err, want{codes.Unauthenticated, "expired", "INVALID_TOKEN", false})
	}
}

// TestAuthorizationServerUnavailable: the server answers 502, or takes
// longer than the call may wait. Never OK: Unavailable with a RetryInfo.
func TestAuthorizationServerUnavailable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	guard := w.guard(t)
	conn := serve(t, mustGuard(t, guard.Middleware, policy...))
	hot := w.token(t, w.admin, devserver.TokenOptions{})
	if _, err := unary(context.Background(), conn, mUnary, "Bearer "+hot); err != nil {
		t.Fatalf("unary before the outage = %v, want OK", err)
	}
	w.srv.SetIntrospectionFault(func(rw http.ResponseWriter, _ *http.Request) bool {
		rw.WriteHeader(http.StatusBadGateway)
		return true
	})
	for kind, call := range kinds {
		for _, method := range []string{mUnary, mAdmin} {
			tok := w.token(t, w.admin, devserver.TokenOptions{}) // fresh: not cached
			sub, err := call(context.Background(), conn, method, "Bearer "+tok)
			if err == nil {
				t.Fatalf("%s %s with the server down = OK (%q), want Unavailable", kind, method, sub)
			}
			check(t, kind+" "+method+" with the server down", err, want{code: codes.Unavailable, msgIn: "retry later", retry: true})
		}
	}
	// A token introspected before the outage is cached: still served.
	if _, err := unary(context.Background(), conn, mUnary, "Bearer "+hot); err != nil {
		t.Fatalf("unary with a cached token during the outage = %v, want OK", err)
	}
}

// TestClientAuthenticationRejected: the server refuses this API's own
// credentials. Internal, and nothing of the server's answer reaches the
// caller.
func TestClientAuthenticationRejected(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	conn := serve(t, mustGuard(t, w.guard(t).Middleware, policy...))
	w.srv.SetIntrospectionFault(func(rw http.ResponseWriter, _ *http.Request) bool {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusUnauthorized)
		_, _ = rw.Write([]byte(`{"error":"invalid_client","error_description":"key 4711 revoked"}`))
		return true
	})
	for kind, call := range kinds {
		tok := w.token(t, w.admin, devserver.TokenOptions{})
		_, err := call(context.Background(), conn, mUnary, "Bearer "+tok)
		check(t, kind+" with our credentials rejected", err, want{code: codes.Internal, msgIn: "internal error"})
		st := status.Convert(err)
		for _, leak := range []string{"4711", "revoked", "invalid_client", tok} {
			if strings.Contains(st.Message(), leak) || strings.Contains(st.String(), leak) {
				t.Errorf("%s status %v leaks %q", kind, st, leak)
			}
		}
		if len(st.Details()) != 0 {
			t.Errorf("%s status details = %v, want none", kind, st.Details())
		}
	}
}

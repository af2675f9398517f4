package grpcguard_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// A Middleware that never reaches a server: for tests of configuration.
func offlineMiddleware(t *testing.T) *middleware.Middleware {
	t.Helper()
	m, err := middleware.New(introspectorFunc(func(context.Context, string) error { return errors.New("unreachable") }), "123")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	m := offlineMiddleware(t)
	if _, err := grpcguard.New(nil); err == nil {
		t.Error("New(nil) = nil error")
	}
	tests := []struct {
		name   string
		opts   []grpcguard.Option
		wantIn string
	}{
		{"method without slash", []grpcguard.Option{grpcguard.WithMethod("pkg.Svc/Method")}, `"pkg.Svc/Method" is neither`},
		{"empty method", []grpcguard.Option{grpcguard.WithMethod("/pkg.Svc/")}, "neither"},
		{"empty service", []grpcguard.Option{grpcguard.WithPublic("//Method")}, "neither"},
		{"extra segment", []grpcguard.Option{grpcguard.WithPublic("/a/b/c")}, "neither"},
		{"empty public name", []grpcguard.Option{grpcguard.WithPublic("")}, "neither"},
		{"both public and required", []grpcguard.Option{grpcguard.WithPublic("/a.B/C"), grpcguard.WithMethod("/a.B/C", middleware.Role("x"))}, "both public and has requirements"},
		{"required twice", []grpcguard.Option{grpcguard.WithMethod("/a.B/C"), grpcguard.WithMethods(map[string][]middleware.Requirement{"/a.B/C": nil})}, "twice"},
		{"public twice", []grpcguard.Option{grpcguard.WithPublic("a.B", "a.B")}, "public twice"},
		{"empty metadata key", []grpcguard.Option{grpcguard.WithMetadataKey("")}, "metadata key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := grpcguard.New(m, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.HasPrefix(err.Error(), "grpcguard: ") {
				t.Errorf("New() err = %v, want one mentioning %q", err, tt.wantIn)
			}
		})
	}
}

func TestRuleLookup(t *testing.T) {
	g, err := grpcguard.New(offlineMiddleware(t),
		grpcguard.WithPublic("grpc.health.v1.Health", "/a.B/Open"),
		grpcguard.WithMethod("a.B", middleware.Role("x")),
		grpcguard.WithMethod("/grpc.health.v1.Health/List", middleware.Role("admin")), // the method wins over its service
	)
	if err != nil {
		t.Fatal(err)
	}
	for method, public := range map[string]bool{
		"/grpc.health.v1.Health/Check": true, "/grpc.health.v1.Health/Watch": true, "/grpc.health.v1.Health/List": false,
		"/a.B/Open": true, "/a.B/Closed": false, "/a.Bc/Open": false, "/a.B.C/Open": false, "/other.Svc/M": false, "": false, "/": false,
		// Odd names (reachable through an UnknownServiceHandler) never borrow a public rule.
		"/grpc.health.v1.Health/../../admin.v1.Admin/Delete": false, "/grpc.health.v1.Health/Check/x": false,
		"grpc.health.v1.Health/Check": false, "/grpc.health.v1.Health/": false, "//Check": false,
	} {
		if got := g.Public(method); got != public {
			t.Errorf("Public(%q) = %v, want %v", method, got, public)
		}
	}
}

func TestVerifyMethods(t *testing.T) {
	g, err := grpcguard.New(offlineMiddleware(t),
		grpcguard.WithPublic("/test.v1.Svc/Public", "/test.v1.Svc/Pubilc", "test.v1.Nope"),
		grpcguard.WithMethod("/test.v1.Svc/Admin", middleware.Role("admin")),
		grpcguard.WithMethod("/test.v1.Svc/Admn", middleware.Role("admin")),
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(&svcDesc, struct{}{})
	err = g.VerifyMethods(srv.GetServiceInfo())
	for _, want := range []string{`"/test.v1.Svc/Pubilc": service "test.v1.Svc" has no method "Pubilc"`, `"/test.v1.Svc/Admn"`, `"test.v1.Nope": the server has no service "test.v1.Nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("VerifyMethods() = %v, want it to mention %s", err, want)
		}
	}
	for _, ok := range []string{"/test.v1.Svc/Public\"", "/test.v1.Svc/Admin\""} {
		if err != nil && strings.Contains(err.Error(), ok) {
			t.Errorf("VerifyMethods() = %v, reports %s which exists", err, ok)
		}
	}
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		e    middleware.Error
		code codes.Code
		msg  string
	}{
		{middleware.Error{StatusCode: http.StatusBadRequest, Code: middleware.CodeInvalidRequest, Description: "more than one Authorization header"}, codes.InvalidArgument, "more than one Authorization header"},
		{middleware.Error{StatusCode: http.StatusUnauthorized, Description: "missing bearer token"}, codes.Unauthenticated, "missing bearer token"},
		{middleware.Error{StatusCode: http.StatusUnauthorized}, codes.Unauthenticated, "missing bearer token"},
		{middleware.Error{StatusCode: http.StatusUnauthorized, Code: middleware.CodeInvalidToken, Description: "token has expired"}, codes.Unauthenticated, "token has expired"},
		{middleware.Error{StatusCode: http.StatusForbidden, Code: middleware.CodeInsufficientScope, Description: "requires scope", Scope: "a b"}, codes.PermissionDenied, "requires scope"},
		{middleware.Error{StatusCode: http.StatusServiceUnavailable, Description: "retry later", RetryAfter: 3 * time.Second}, codes.Unavailable, "retry later"},
		{middleware.Error{StatusCode: http.StatusInternalServerError, Description: "upstream said: key revoked"}, codes.Internal, "internal error"},
		{middleware.Error{StatusCode: 418, Description: "teapot"}, codes.Internal, "internal error"},
	}
	for _, tt := range tests {
		st := grpcguard.Status(&tt.e)
		if st.Code() != tt.code || st.Message() != tt.msg || grpcguard.Code(&tt.e) != tt.code {
			t.Errorf("Status(%d %q) = %v %q, want %v %q", tt.e.StatusCode, tt.e.Description, st.Code(), st.Message(), tt.code, tt.msg)
		}
	}
	st := grpcguard.Status(&tests[5].e)
	if ri, ok := st.Details()[0].(*errdetails.RetryInfo); !ok || ri.GetRetryDelay().AsDuration() != 3*time.Second {
		t.Errorf("Status(503).Details() = %v, want RetryInfo 3s", st.Details())
	}
	st = grpcguard.Status(&middleware.Error{StatusCode: http.StatusServiceUnavailable})
	if ri, ok := st.Details()[0].(*errdetails.RetryInfo); !ok || ri.GetRetryDelay().AsDuration() != middleware.DefaultRetryAfter {
		t.Errorf("Status(503 without Retry-After).Details() = %v, want RetryInfo %v", st.Details(), middleware.DefaultRetryAfter)
	}
	st = grpcguard.Status(&tests[4].e)
	if ei, ok := st.Details()[0].(*errdetails.ErrorInfo); !ok || ei.Reason != "INSUFFICIENT_SCOPE" || ei.Metadata["scope"] != "a b" {
		t.Errorf("Status(403).Details() = %v, want ErrorInfo INSUFFICIENT_SCOPE with scope", st.Details())
	}
}

func TestTokenSources(t *testing.T) {
	w := newWorld(t)
	m := w.guard(t).Middleware
	tok := w.token(t, w.reader, devserver.TokenOptions{})

	t.Run("metadata key", func(t *testing.T) {
		conn := serve(t, mustGuard(t, m, grpcguard.WithMetadataKey("X-Forwarded-Authorization")))
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-authorization", "Bearer "+tok)
		if sub, err := unary(ctx, conn, mUnary); err != nil || sub != w.reader.UserID {
			t.Errorf("unary with x-forwarded-authorization = %q, %v; want %q", sub, err, w.reader.UserID)
		}
		// authorization is now someone else's (the proxy's): not read.
		_, err := unary(context.Background(), conn, mUnary, "Bearer "+tok)
		check(t, "unary with only authorization", err, want{code: codes.Unauthenticated})
	})

	t.Run("token func", func(t *testing.T) {
		f := func(ctx context.Context) (string, error) {
			v := metadata.ValueFromIncomingContext(ctx, "x-api-token")
			switch {
			case len(v) == 0:
				return "", nil
			case v[0] == "status":
				return "", status.Error(codes.FailedPrecondition, "custom")
			case v[0] == "core":
				return "", &middleware.Error{StatusCode: http.StatusForbidden, Code: middleware.CodeInsufficientScope, Description: "custom refusal"}
			case v[0] == "plain":
				return "", errors.New("secret detail")
			}
			return v[0], nil
		}
		conn := serve(t, mustGuard(t, m, grpcguard.WithTokenFunc(f)))
		call := func(v string) (string, error) {
			ctx := context.Background()
			if v != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-api-token", v)
			}
			return unary(ctx, conn, mUnary)
		}
		if sub, err := call(tok); err != nil || sub != w.reader.UserID {
			t.Errorf("unary with x-api-token = %q, %v; want %q", sub, err, w.reader.UserID)
		}
		_, err := call("")
		check(t, "unary without x-api-token", err, want{code: codes.Unauthenticated})
		_, err = call("status")
		check(t, "token func status error", err, want{code: codes.FailedPrecondition, msgIn: "custom"})
		_, err = call("core")
		check(t, "token func core error", err, want{codes.PermissionDenied, "custom refusal", "INSUFFICIENT_SCOPE", false})
		_, err = call("plain")
		check(t, "token func plain error", err, want{code: codes.InvalidArgument, msgIn: "malformed credentials"})
		if strings.Contains(status.Convert(err).Message(), "secret") {
			t.Errorf("plain error leaks its text: %v", err)
		}
		_, err = call("not,b64")
		check(t, "token func with a non-b64token", err, want{codes.InvalidArgument, "b64token", "INVALID_REQUEST", false})
	})

	t.Run("default requirements", func(t *testing.T) {
		conn := serve(t, mustGuard(t, m, grpcguard.WithDefault(middleware.Role("admin")), grpcguard.WithMethod(mAdmin)))
		_, err := unary(context.Background(), conn, mUnary, "Bearer "+tok)
		check(t, "unary under an admin default", err, want{codes.PermissionDenied, "admin", "INSUFFICIENT_SCOPE", false})
		if _, err := unary(context.Background(), conn, mAdmin, "Bearer "+tok); err != nil {
			t.Errorf("unary of a method listed without requirements = %v, want OK", err)
		}
	})
}

type introspectorFunc func(ctx context.Context, token string) error

func (f introspectorFunc) Introspect(ctx context.Context, token string) (*introspect.Response, error) {
	return nil, f(ctx, token)
}

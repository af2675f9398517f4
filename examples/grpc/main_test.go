package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/examples/grpc/demov1"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/examples/internal/exampletest"
)

// stack is the example's server, protected by a guard of the development
// authorization server, and a client connection to it.
type stack struct {
	dev   *exampleapp.Dev
	guard *tokenguard.Guard
	conn  *grpc.ClientConn
	demo  demov1.DemoClient
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dev, err := exampleapp.StartDev(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	var cfg exampleapp.Config
	dev.Configure(&cfg)
	guard, err := exampleapp.NewGuard(context.Background(), cfg, exampleapp.DiscardLogs())
	if err != nil {
		t.Fatal(err)
	}
	srv, stopping, err := newServer(guard.Middleware)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	conn := dial(t, l.Addr().String())
	t.Cleanup(func() {
		stopping()
		srv.Stop()
	})
	return &stack{dev: dev, guard: guard, conn: conn, demo: demov1.NewDemoClient(conn)}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// token mints a fresh token of u for the example's project.
func (s *stack) token(t *testing.T, u devserver.ServiceUser, projects ...string) string {
	t.Helper()
	if projects == nil {
		projects = []string{s.dev.Project.ID}
	}
	tok, err := s.dev.Server.MintToken(u.UserID, devserver.TokenOptions{ProjectIDs: projects})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func auth(values ...string) context.Context {
	ctx := context.Background()
	for _, v := range values {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

// wantCode fails unless err has code and a message containing msgIn.
func wantCode(t *testing.T, call string, err error, code codes.Code, msgIn string) *status.Status {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), msgIn) {
		t.Errorf("%s = %v %q, want %v with %q", call, st.Code(), st.Message(), code, msgIn)
	}
	return st
}

func TestDemo(t *testing.T) {
	s := newStack(t)
	admin, reader := "Bearer "+s.dev.Admin, "Bearer "+s.dev.Reader
	hint := "urn:zitadel:iam:org:project:id:" + s.dev.Project.ID + ":aud"
	e := &emptypb.Empty{}

	t.Run("Ping is public", func(t *testing.T) {
		if r, err := s.demo.Ping(context.Background(), e); err != nil || r.Message != "pong" {
			t.Errorf("Ping() = %v, %v; want pong", r, err)
		}
	})
	t.Run("ProtectedPing", func(t *testing.T) {
		if r, err := s.demo.ProtectedPing(auth(reader), e); err != nil || r.Message != "pong" {
			t.Errorf("ProtectedPing(reader) = %v, %v; want pong", r, err)
		}
		_, err := s.demo.ProtectedPing(context.Background(), e)
		wantCode(t, "ProtectedPing() without a token", err, codes.Unauthenticated, "missing bearer token")
	})
	t.Run("Me", func(t *testing.T) {
		r, err := s.demo.Me(auth(admin), e)
		if err != nil {
			t.Fatal(err)
		}
		if r.Sub != s.dev.AdminUser.UserID || r.ClientId == "" || r.OrgId != s.dev.Server.Org().ID ||
			!slices.Equal(r.Roles, []string{"admin", "reader"}) || r.Exp < time.Now().Unix() {
			t.Errorf("Me(admin) = %v", r)
		}
	})
	t.Run("Admin", func(t *testing.T) {
		if r, err := s.demo.Admin(auth(admin), e); err != nil || r.Sub != s.dev.AdminUser.UserID || r.Message != "hello, admin" {
			t.Errorf("Admin(admin) = %v, %v", r, err)
		}
		_, err := s.demo.Admin(auth(reader), e)
		wantCode(t, "Admin(reader)", err, codes.PermissionDenied, `"admin"`)
	})
	t.Run("refusals", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			auth  []string
			code  codes.Code
			msgIn string
		}{
			{"two tokens", []string{admin, reader}, codes.InvalidArgument, "more than one"},
			{"oversized", []string{"Bearer " + strings.Repeat("a", 9<<10)}, codes.InvalidArgument, "8 KiB"},
			{"not a b64token", []string{"Bearer a,b"}, codes.InvalidArgument, "b64token"},
			{"unknown token", []string{"Bearer unknown"}, codes.Unauthenticated, hint},
			{"token for another project", []string{"Bearer " + s.token(t, s.dev.AdminUser, s.dev.Server.CreateProject("other").ID)}, codes.Unauthenticated, hint},
		} {
			_, err := s.demo.Me(auth(tt.auth...), e)
			wantCode(t, "Me() with "+tt.name, err, tt.code, tt.msgIn)
		}
	})
	t.Run("health is public", func(t *testing.T) {
		h := healthpb.NewHealthClient(s.conn)
		for _, svc := range []string{"", "tokenguard.example.v1.Demo"} {
			r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Health.Check(%q) = %v, %v; want SERVING", svc, r, err)
			}
		}
	})
	t.Run("reflection", func(t *testing.T) {
		r := newReflector(s.conn)
		names, err := r.services(context.Background())
		want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "tokenguard.example.v1.Demo"}
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("reflection list = %v, %v; want %v", names, err, want)
		}
		outs, err := r.call(auth(admin), "tokenguard.example.v1.Demo/Me", 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := field(outs[0], "sub").String(); got != s.dev.AdminUser.UserID {
			t.Errorf("Me via reflection: sub = %q", got)
		}
		// The schema outside tests rely on: field numbers and types of Me.
		md, _ := r.method(context.Background(), "tokenguard.example.v1.Demo/Me")
		fields := md.Output().Fields()
		for i, name := range []string{"sub", "client_id", "org_id", "roles", "exp"} {
			f := fields.ByNumber(protoreflectNumber(i + 1))
			if f == nil || string(f.Name()) != name {
				t.Errorf("Me field %d = %v, want %s", i+1, f, name)
			}
		}
		if f := fields.ByName("roles"); f == nil || !f.IsList() || f.Kind().String() != "string" {
			t.Errorf("Me.roles = %v, want repeated string", f)
		}
		if f := fields.ByName("exp"); f == nil || f.Kind().String() != "int64" {
			t.Errorf("Me.exp = %v, want int64", f)
		}
	})
}

func TestWatch(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithTimeout(auth("Bearer "+s.dev.Admin), 30*time.Second)
	defer cancel()
	stream, err := s.demo.Watch(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for want := uint64(1); want <= 3; want++ {
		m, err := stream.Recv()
		if err != nil || m.Seq != want {
			t.Fatalf("Watch message %d = %v, %v", want, m, err)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("3 messages in %v, want one every 100 ms", d)
	}
	// The user is locked; the API hears of it and invalidates the subject.
	if err := s.dev.Server.LockUser(s.dev.AdminUser.UserID, true); err != nil {
		t.Fatal(err)
	}
	s.guard.InvalidateSubject(s.dev.AdminUser.UserID)
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		wantCode(t, "Watch after the invalidation", err, codes.Unauthenticated, "")
	case <-time.After(time.Second):
		t.Fatal("Watch still streaming a second after the invalidation")
	}

	_, err = s.demo.Watch(context.Background(), &emptypb.Empty{}) // the error comes with the first Recv
	if err == nil {
		_, err = must(s.demo.Watch(context.Background(), &emptypb.Empty{})).Recv()
	}
	wantCode(t, "Watch() without a token", err, codes.Unauthenticated, "")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAuthorizationServerFailures(t *testing.T) {
	s := newStack(t)
	t.Run("unavailable", func(t *testing.T) {
		s.dev.Server.SetIntrospectionFault(func(w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		})
		defer s.dev.Server.SetIntrospectionFault(nil)
		_, err := s.demo.Me(auth("Bearer "+s.token(t, s.dev.ReaderUser)), &emptypb.Empty{})
		st := wantCode(t, "Me() with the server down", err, codes.Unavailable, "retry later")
		if len(st.Details()) != 1 {
			t.Fatalf("details = %v, want one RetryInfo", st.Details())
		}
		if _, ok := st.Details()[0].(*errdetails.RetryInfo); !ok {
			t.Errorf("details = %v, want one RetryInfo", st.Details())
		}
		stream, err := s.demo.Watch(auth("Bearer "+s.token(t, s.dev.ReaderUser)), &emptypb.Empty{})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, "Watch() with the server down", err, codes.Unavailable, "retry later")
	})
}

// listening matches the line the program prints when it listens.
var listening = regexp.MustCompile(`gRPC API listening on (\S+)`)

// start runs the program until stop is called or the test ends, and returns
// its address and what it printed.
func start(t *testing.T, args []string, env map[string]string) (addr string, out *exampletest.Running, stop func() error) {
	t.Helper()
	p := exampletest.Start(t, run, args, env, listening)
	return p.Addr, p, p.Stop
}

func TestProgram(t *testing.T) {
	t.Run("configured by env", func(t *testing.T) {
		s := newStack(t) // its development server stands in for ZITADEL
		var cfg exampleapp.Config
		s.dev.Configure(&cfg)
		env := map[string]string{"ISSUER": cfg.Issuer, "KEY_FILE": cfg.KeyFile, "PROJECT_ID": cfg.ProjectID, "ADDR": "127.0.0.1:0"}
		addr, _, _ := start(t, nil, env)
		demo := demov1.NewDemoClient(dial(t, addr))
		if r, err := demo.ProtectedPing(auth("Bearer "+s.dev.Reader), &emptypb.Empty{}); err != nil || r.Message != "pong" {
			t.Errorf("ProtectedPing = %v, %v; want pong", r, err)
		}
	})
	t.Run("configured by flags", func(t *testing.T) {
		s := newStack(t)
		var cfg exampleapp.Config
		s.dev.Configure(&cfg)
		args := []string{"-issuer", cfg.Issuer, "-key-file", cfg.KeyFile, "-project-id", cfg.ProjectID, "-addr", "127.0.0.1:0"}
		addr, _, _ := start(t, args, map[string]string{"ISSUER": "http://127.0.0.1:1"}) // flags win over env
		if _, err := demov1.NewDemoClient(dial(t, addr)).Me(auth("Bearer "+s.dev.Admin), &emptypb.Empty{}); err != nil {
			t.Errorf("Me = %v, want OK", err)
		}
	})
	t.Run("out of the box", func(t *testing.T) {
		addr, out, stop := start(t, nil, map[string]string{"ADDR": "127.0.0.1:0"})
		lines := regexp.MustCompile(`grpcurl -plaintext (?:-H 'authorization: Bearer (\S+)' )?(\S+) (\S+)`).FindAllStringSubmatch(out.String(), -1)
		type outcome struct {
			method string
			code   codes.Code
		}
		want := []outcome{{"list", codes.OK}, {"grpc.health.v1.Health/Check", codes.OK}, {"tokenguard.example.v1.Demo/Ping", codes.OK},
			{"tokenguard.example.v1.Demo/Me", codes.Unauthenticated}, {"tokenguard.example.v1.Demo/Me", codes.OK},
			{"tokenguard.example.v1.Demo/Admin", codes.OK}, {"tokenguard.example.v1.Demo/Admin", codes.PermissionDenied},
			{"tokenguard.example.v1.Demo/Watch", codes.OK}}
		if len(lines) != len(want) {
			t.Fatalf("printed %d grpcurl lines, want %d:\n%s", len(lines), len(want), out)
		}
		conn := dial(t, addr)
		r := newReflector(conn)
		for i, l := range lines {
			token, target, method := l[1], l[2], l[3]
			if target != addr || method != want[i].method {
				t.Errorf("grpcurl line %d calls %s %s, want %s %s", i, target, method, addr, want[i].method)
				continue
			}
			ctx := context.Background()
			if token != "" {
				ctx = auth("Bearer " + token)
			}
			if method == "list" {
				if names, err := r.services(ctx); err != nil || !slices.Contains(names, "tokenguard.example.v1.Demo") {
					t.Errorf("grpcurl line %d (list) = %v, %v", i, names, err)
				}
				continue
			}
			outs, err := r.call(ctx, method, 3)
			if status.Code(err) != want[i].code {
				t.Errorf("grpcurl line %d (%s) = %v, want %v", i, method, err, want[i].code)
			}
			if err == nil && len(outs) == 0 {
				t.Errorf("grpcurl line %d (%s) answered nothing", i, method)
			}
		}

		// Stopping the program ends open streams (with Unavailable) instead
		// of waiting for them.
		stream, err := demov1.NewDemoClient(conn).Watch(auth("Bearer "+lines[len(lines)-1][1]), &emptypb.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := stop(); err != nil {
			t.Errorf("run() after cancel with a stream open = %v", err)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("shutdown with a stream open took %v", d)
		}
		for {
			if _, err := stream.Recv(); err != nil {
				wantCode(t, "Watch at shutdown", err, codes.Unavailable, "")
				break
			}
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			args   []string
			env    map[string]string
			wantIn string
		}{
			{"issuer without key", nil, map[string]string{"ISSUER": "http://127.0.0.1:1"}, "KEY_FILE (-key-file) and PROJECT_ID (-project-id)"},
			{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
			{"extra argument", []string{"serve"}, nil, "unexpected arguments"},
			{"missing key file", []string{"-issuer", "http://127.0.0.1:1", "-key-file", "/nonexistent.json", "-project-id", "1"}, nil, "/nonexistent.json"},
			{"bad address", []string{"-addr", "256.0.0.1:0"}, nil, "listen"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
					t.Errorf("run() err = %v, want it to mention %q", err, tt.wantIn)
				}
			})
		}
	})
	t.Run("default address", func(t *testing.T) {
		cfg, err := exampleapp.ParseConfigAt("grpc", DefaultAddr, nil, func(string) string { return "" }, io.Discard)
		if err != nil || cfg.Addr != "127.0.0.1:9090" {
			t.Errorf("default address = %q, %v; want 127.0.0.1:9090", cfg.Addr, err)
		}
	})
}

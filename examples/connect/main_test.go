package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/examples/connect/demov1/demov1connect"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/examples/internal/exampletest"
)

// stack is the example's handler on a loopback server (HTTP/1.1 and
// plaintext HTTP/2), protected by a guard of the development authorization
// server.
type stack struct {
	dev    *exampleapp.Dev
	guard  *tokenguard.Guard
	url    string
	client *http.Client // speaks plaintext HTTP/2, as gRPC needs
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
	srv := httptest.NewUnstartedServer(newHandler(guard.Middleware))
	srv.Config.Protocols = h2c()
	srv.Start()
	t.Cleanup(srv.Close)
	return &stack{dev: dev, guard: guard, url: srv.URL, client: &http.Client{Transport: &http.Transport{Protocols: h2c()}}}
}

func h2c() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

func (s *stack) token(t *testing.T, u devserver.ServiceUser) string {
	t.Helper()
	tok, err := s.dev.Server.MintToken(u.UserID, devserver.TokenOptions{ProjectIDs: []string{s.dev.Project.ID}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// protocols are the three a Connect handler serves.
var protocols = map[string][]connect.ClientOption{
	"connect": nil,
	"grpc":    {connect.WithGRPC()},
	"grpcweb": {connect.WithGRPCWeb()},
}

func req(auth ...string) *connect.Request[emptypb.Empty] {
	r := connect.NewRequest(&emptypb.Empty{})
	for _, a := range auth {
		r.Header().Add("Authorization", a)
	}
	return r
}

func wantCode(t *testing.T, call string, err error, code connect.Code, msgIn string) *connect.Error {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code || !strings.Contains(ce.Message(), msgIn) {
		t.Errorf("%s = %v, want %v with %q", call, err, code, msgIn)
		return nil
	}
	return ce
}

func TestDemo(t *testing.T) {
	s := newStack(t)
	admin, reader := "Bearer "+s.dev.Admin, "Bearer "+s.dev.Reader
	hint := "urn:zitadel:iam:org:project:id:" + s.dev.Project.ID + ":aud"
	for name, opts := range protocols {
		t.Run(name, func(t *testing.T) {
			demo := demov1connect.NewDemoClient(s.client, s.url, opts...)
			ctx := context.Background()
			if r, err := demo.Ping(ctx, req()); err != nil || r.Msg.Message != "pong" {
				t.Errorf("Ping() = %v, %v", r, err)
			}
			if r, err := demo.ProtectedPing(ctx, req(reader)); err != nil || r.Msg.Message != "pong" {
				t.Errorf("ProtectedPing(reader) = %v, %v", r, err)
			}
			r, err := demo.Me(ctx, req(admin))
			if err != nil {
				t.Fatal(err)
			}
			if m := r.Msg; m.Sub != s.dev.AdminUser.UserID || m.OrgId != s.dev.Server.Org().ID || !slices.Equal(m.Roles, []string{"admin", "reader"}) || m.Exp < time.Now().Unix() {
				t.Errorf("Me(admin) = %v", m)
			}
			if _, err := demo.Admin(ctx, req(admin)); err != nil {
				t.Errorf("Admin(admin) = %v", err)
			}
			_, err = demo.Admin(ctx, req(reader))
			wantCode(t, "Admin(reader)", err, connect.CodePermissionDenied, `"admin"`)
			_, err = demo.Me(ctx, req())
			wantCode(t, "Me() without a token", err, connect.CodeUnauthenticated, "missing bearer token")
			_, err = demo.Me(ctx, req("Bearer unknown"))
			wantCode(t, "Me(unknown)", err, connect.CodeUnauthenticated, hint)
			_, err = demo.Me(ctx, req(admin, reader))
			wantCode(t, "Me(two tokens)", err, connect.CodeInvalidArgument, "more than one")
			_, err = demo.Me(ctx, req("Bearer a,b"))
			wantCode(t, "Me(not a b64token)", err, connect.CodeInvalidArgument, "b64token")
		})
	}
}

// TestConnectErrorCodes checks the wire as curl sees it: Connect's JSON
// error codes and the HTTP statuses Connect maps them to.
func TestConnectErrorCodes(t *testing.T) {
	s := newStack(t)
	post := func(procedure, auth string) (int, string, http.Header) {
		r, _ := http.NewRequest(http.MethodPost, s.url+procedure, strings.NewReader("{}"))
		r.Header.Set("Content-Type", "application/json")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := s.client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Code, resp.Header
	}
	for _, tt := range []struct {
		name, procedure, auth string
		status                int
		code                  string
	}{
		{"public", demov1connect.DemoPingProcedure, "", 200, ""},
		{"no token", demov1connect.DemoMeProcedure, "", 401, "unauthenticated"},
		{"malformed", demov1connect.DemoMeProcedure, "Bearer a,b", 400, "invalid_argument"},
		{"missing role", demov1connect.DemoAdminProcedure, "Bearer " + s.dev.Reader, 403, "permission_denied"},
	} {
		if status, code, _ := post(tt.procedure, tt.auth); status != tt.status || code != tt.code {
			t.Errorf("%s: POST %s = %d %q, want %d %q", tt.name, tt.procedure, status, code, tt.status, tt.code)
		}
	}

	s.dev.Server.SetIntrospectionFault(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	status, code, h := post(demov1connect.DemoMeProcedure, "Bearer "+s.token(t, s.dev.ReaderUser))
	if status != 503 || code != "unavailable" || h.Get("Retry-After") == "" {
		t.Errorf("server down: POST = %d %q Retry-After %q, want 503 unavailable with Retry-After", status, code, h.Get("Retry-After"))
	}
	s.dev.Server.SetIntrospectionFault(nil)
}

func TestAuthorizationServerFailures(t *testing.T) {
	s := newStack(t)
	for name, opts := range protocols {
		demo := demov1connect.NewDemoClient(s.client, s.url, opts...)
		s.dev.Server.SetIntrospectionFault(func(w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		})
		_, err := demo.Me(context.Background(), req("Bearer "+s.token(t, s.dev.ReaderUser)))
		if ce := wantCode(t, name+" Me() with the server down", err, connect.CodeUnavailable, "retry later"); ce != nil {
			var retry bool
			for _, d := range ce.Details() {
				if v, err := d.Value(); err == nil {
					_, retry = v.(*errdetails.RetryInfo)
				}
			}
			if !retry {
				t.Errorf("%s: details %v, want a RetryInfo", name, ce.Details())
			}
		}
		s.dev.Server.SetIntrospectionFault(func(w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"key 4711 revoked"}`))
			return true
		})
		_, err = demo.Me(context.Background(), req("Bearer "+s.token(t, s.dev.ReaderUser)))
		if ce := wantCode(t, name+" Me() with our credentials rejected", err, connect.CodeInternal, "internal error"); ce != nil && (strings.Contains(ce.Error(), "4711") || len(ce.Details()) > 0) {
			t.Errorf("%s: %v leaks upstream detail", name, ce)
		}
		s.dev.Server.SetIntrospectionFault(nil)
	}
}

func TestWatch(t *testing.T) {
	s := newStack(t)
	for name, opts := range protocols {
		t.Run(name, func(t *testing.T) {
			demo := demov1connect.NewDemoClient(s.client, s.url, opts...)
			user := s.dev.ReaderUser
			tok := s.token(t, user)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stream, err := demo.Watch(ctx, req("Bearer "+tok))
			if err != nil {
				t.Fatal(err)
			}
			for want := uint64(1); want <= 2; want++ {
				if !stream.Receive() || stream.Msg().Seq != want {
					t.Fatalf("Watch message %d: %v %v", want, stream.Msg(), stream.Err())
				}
			}
			if err := s.dev.Server.Revoke(tok); err != nil {
				t.Fatal(err)
			}
			s.guard.Invalidate(tok)
			ended := make(chan error, 1)
			go func() {
				for stream.Receive() {
				}
				ended <- stream.Err()
			}()
			select {
			case err := <-ended:
				wantCode(t, "Watch after the invalidation", err, connect.CodeUnauthenticated, "")
			case <-time.After(time.Second):
				t.Fatal("Watch still streaming a second after the invalidation")
			}
			stream, _ = demo.Watch(ctx, req())
			for stream.Receive() {
			}
			wantCode(t, "Watch() without a token", stream.Err(), connect.CodeUnauthenticated, "")
		})
	}
}

// start runs the program until the test ends and returns its base URL and
// what it printed.
func start(t *testing.T, args []string, env map[string]string) (string, *exampletest.Running) {
	t.Helper()
	p := exampletest.Start(t, run, args, env, exampletest.Listening)
	return p.Addr, p
}

func TestProgram(t *testing.T) {
	t.Run("configured by env", func(t *testing.T) {
		s := newStack(t)
		var cfg exampleapp.Config
		s.dev.Configure(&cfg)
		base, _ := start(t, nil, map[string]string{"ISSUER": cfg.Issuer, "KEY_FILE": cfg.KeyFile, "PROJECT_ID": cfg.ProjectID, "ADDR": "127.0.0.1:0"})
		if _, err := demov1connect.NewDemoClient(http.DefaultClient, base).ProtectedPing(context.Background(), req("Bearer "+s.dev.Reader)); err != nil {
			t.Errorf("ProtectedPing = %v", err)
		}
	})
	t.Run("configured by flags, served to gRPC clients", func(t *testing.T) {
		s := newStack(t)
		var cfg exampleapp.Config
		s.dev.Configure(&cfg)
		args := []string{"-issuer", cfg.Issuer, "-key-file", cfg.KeyFile, "-project-id", cfg.ProjectID, "-addr", "127.0.0.1:0"}
		base, _ := start(t, args, map[string]string{"ISSUER": "http://127.0.0.1:1"})
		demo := demov1connect.NewDemoClient(s.client, base, connect.WithGRPC()) // plaintext HTTP/2
		if _, err := demo.Me(context.Background(), req("Bearer "+s.dev.Admin)); err != nil {
			t.Errorf("Me over gRPC = %v", err)
		}
	})
	t.Run("out of the box", func(t *testing.T) {
		base, out := start(t, nil, map[string]string{"ADDR": "127.0.0.1:0"})
		curls := regexp.MustCompile(`  curl -i (?:-H 'Authorization: Bearer (\S+)' )?-H 'Content-Type: application/json' -d '\{\}' (http://\S+)`).FindAllStringSubmatch(out.String(), -1)
		want := []struct {
			procedure string
			status    int
		}{{demov1connect.DemoPingProcedure, 200}, {demov1connect.DemoMeProcedure, 401}, {demov1connect.DemoMeProcedure, 200},
			{demov1connect.DemoAdminProcedure, 200}, {demov1connect.DemoAdminProcedure, 403}}
		if len(curls) != len(want) {
			t.Fatalf("printed %d curl lines, want %d:\n%s", len(curls), len(want), out)
		}
		for i, c := range curls {
			if c[2] != base+want[i].procedure {
				t.Errorf("curl line %d targets %s, want %s%s", i, c[2], base, want[i].procedure)
			}
			r, _ := http.NewRequest(http.MethodPost, c[2], strings.NewReader("{}"))
			r.Header.Set("Content-Type", "application/json")
			if c[1] != "" {
				r.Header.Set("Authorization", "Bearer "+c[1])
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want[i].status {
				t.Errorf("curl line %d (%s) = %d %s, want %d", i, want[i].procedure, resp.StatusCode, body, want[i].status)
			}
		}
		// The stream line: printf '\0\0\0\0\2{}' | curl ... application/connect+json.
		m := regexp.MustCompile(`printf '\\0\\0\\0\\0\\2\{\}' \| curl -N -H 'Authorization: Bearer (\S+)' -H 'Content-Type: application/connect\+json' --data-binary @- (http://\S+)`).FindStringSubmatch(out.String())
		if m == nil || m[2] != base+demov1connect.DemoWatchProcedure {
			t.Fatalf("no Watch curl line for %s:\n%s", base, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, m[2], strings.NewReader("\x00\x00\x00\x00\x02{}"))
		r.Header.Set("Content-Type", "application/connect+json")
		r.Header.Set("Authorization", "Bearer "+m[1])
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for i := 1; i <= 2; i++ {
			var prefix [5]byte
			if _, err := io.ReadFull(br, prefix[:]); err != nil {
				t.Fatalf("Watch envelope %d: %v", i, err)
			}
			msg := make([]byte, binary.BigEndian.Uint32(prefix[1:]))
			if _, err := io.ReadFull(br, msg); err != nil || prefix[0] != 0 || !strings.Contains(string(msg), `"seq"`) {
				t.Fatalf("Watch envelope %d = %x %s, %v", i, prefix, msg, err)
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
		cfg, err := exampleapp.ParseConfigAt("connect", DefaultAddr, nil, func(string) string { return "" }, io.Discard)
		if err != nil || cfg.Addr != "127.0.0.1:8082" {
			t.Errorf("default address = %q, %v; want 127.0.0.1:8082", cfg.Addr, err)
		}
	})
}

// Command connect is the gRPC example's Demo API with connectrpc.com/connect
// on net/http, protected through tokenguard's core entry point.
//
// With no configuration it starts an in-process development authorization
// server and prints ready-to-run curl commands:
//
//	go run ./examples/connect
//
// Against ZITADEL:
//
//	ISSUER=https://my-instance.zitadel.cloud KEY_FILE=api-key.json PROJECT_ID=123 go run ./examples/connect
//
// It serves tokenguard.example.v1.Demo on ADDR (default 127.0.0.1:8082) in
// the Connect, gRPC and gRPC-Web protocols, over HTTP/1.1 and plaintext
// HTTP/2: Ping (public), ProtectedPing and Me (any valid token for the
// project), Admin (project role admin) and Watch (a server stream that ends
// with unauthenticated when the token expires or is invalidated). The token
// travels in "Authorization: Bearer <token>". Refusals use Connect's codes:
// unauthenticated, invalid_argument, permission_denied, unavailable,
// internal. It is its own module so that connect stays out of the library's
// go.mod.
package main

//go:generate bash ../proto/generate.sh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tokenguard/tokenguard/examples/connect/demov1"
	"github.com/tokenguard/tokenguard/examples/connect/demov1/demov1connect"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/middleware"
)

// DefaultAddr is where the example listens unless ADDR or -addr says
// otherwise.
const DefaultAddr = "127.0.0.1:8082"

// tick is how often Watch sends a message.
const tick = 100 * time.Millisecond

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := exampleapp.ParseConfigAt("connect", DefaultAddr, args, getenv, stderr)
	if err != nil {
		return err
	}
	ready := func(addr string) { fmt.Fprintf(stdout, "Connect API listening on http://%s\n", addr) }
	if cfg.Issuer == "" {
		dev, err := exampleapp.StartDevFor(stdout, cfg)
		if err != nil {
			return err
		}
		defer dev.Close()
		dev.Configure(&cfg)
		ready = announce(stdout, dev)
	}
	guard, err := exampleapp.NewGuard(ctx, cfg, middleware.WithLogger(exampleapp.Logger(stderr)))
	if err != nil {
		return err
	}
	defer guard.Close()
	var protocols http.Protocols // HTTP/1.1 for curl and browsers, plaintext HTTP/2 for gRPC clients
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: newHandler(guard.Middleware), ReadHeaderTimeout: 10 * time.Second, Protocols: &protocols}
	return exampleapp.ServeServer(ctx, cfg.Addr, srv, ready)
}

// newHandler returns the API: the Demo service behind the guard.
func newHandler(mw *middleware.Middleware) http.Handler {
	g := &guard{
		mw:     mw,
		public: map[string]bool{demov1connect.DemoPingProcedure: true},
		reqs: map[string][]middleware.Requirement{
			demov1connect.DemoAdminProcedure: {middleware.Role("admin")},
			// ProtectedPing, Me and Watch: any valid token for the project.
		},
	}
	mux := http.NewServeMux()
	mux.Handle(demov1connect.NewDemoHandler(demo{}, connect.WithInterceptors(g)))
	return mux
}

// demo implements tokenguard.example.v1.Demo.
type demo struct{}

func (demo) Ping(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[demov1.PingResponse], error) {
	return connect.NewResponse(&demov1.PingResponse{Message: "pong"}), nil
}

func (demo) ProtectedPing(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[demov1.PingResponse], error) {
	return connect.NewResponse(&demov1.PingResponse{Message: "pong"}), nil
}

func (demo) Me(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[demov1.MeResponse], error) {
	c, ok := middleware.ClaimsFromContext(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("no claims")) // not reached: the procedure is protected
	}
	return connect.NewResponse(&demov1.MeResponse{Sub: c.Subject, ClientId: c.ClientID, OrgId: c.OrgID, Roles: c.Roles.Names(), Exp: c.Expiry.Unix()}), nil
}

func (demo) Admin(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[demov1.AdminResponse], error) {
	c, ok := middleware.ClaimsFromContext(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("no claims"))
	}
	return connect.NewResponse(&demov1.AdminResponse{Message: "hello, admin", Sub: c.Subject}), nil
}

// Watch sends a message at once and then every 100 ms until the client
// leaves or the server stops; the guard ends it with unauthenticated when
// the token expires or is invalidated.
func (demo) Watch(ctx context.Context, _ *connect.Request[emptypb.Empty], stream *connect.ServerStream[demov1.WatchResponse]) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for seq := uint64(1); ; seq++ {
		if err := stream.Send(&demov1.WatchResponse{Seq: seq, Time: time.Now().UnixMilli()}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// announce prints where the API listens and curl commands (Connect's JSON
// protocol) with the development server's tokens.
func announce(stdout io.Writer, d *exampleapp.Dev) func(addr string) {
	return func(addr string) {
		base := "http://" + addr
		var b strings.Builder // one write, so the banner is never interleaved
		fmt.Fprintf(&b, "Connect API listening on %s\n\nTry it (Connect's JSON protocol; gRPC clients work too, over plaintext HTTP/2):\n", base)
		call := func(token, procedure string) {
			h := ""
			if token != "" {
				h = "-H 'Authorization: Bearer " + token + "' "
			}
			fmt.Fprintf(&b, "  curl -i %s-H 'Content-Type: application/json' -d '{}' %s%s\n", h, base, procedure)
		}
		call("", demov1connect.DemoPingProcedure)
		call("", demov1connect.DemoMeProcedure)
		call(d.Admin, demov1connect.DemoMeProcedure)
		call(d.Admin, demov1connect.DemoAdminProcedure)
		call(d.Reader, demov1connect.DemoAdminProcedure)
		fmt.Fprintf(&b, "(Me without a token: 401 unauthenticated; Admin with the reader's token: 403 permission_denied)\n")
		fmt.Fprintf(&b, "The stream, one enveloped JSON message every 100 ms:\n")
		fmt.Fprintf(&b, "  printf '\\0\\0\\0\\0\\2{}' | curl -N -H 'Authorization: Bearer %s' -H 'Content-Type: application/connect+json' --data-binary @- %s%s\n", d.Reader, base, demov1connect.DemoWatchProcedure)
		_, _ = io.WriteString(stdout, b.String())
	}
}

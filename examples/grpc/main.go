// Command grpc is a gRPC API protected by tokenguard, with grpcguard.
//
// With no configuration it starts an in-process development authorization
// server and prints ready-to-run grpcurl commands:
//
//	go run ./examples/grpc
//
// Against ZITADEL:
//
//	ISSUER=https://my-instance.zitadel.cloud KEY_FILE=api-key.json PROJECT_ID=123 go run ./examples/grpc
//
// It serves, over plaintext HTTP/2 on ADDR (default 127.0.0.1:9090), the
// health service grpc.health.v1.Health (public), server reflection (public),
// and tokenguard.example.v1.Demo: Ping (public), ProtectedPing and Me (any
// valid token for the project), Admin (project role admin) and Watch (a
// server stream that ends with UNAUTHENTICATED when the token expires or is
// invalidated). The token travels in the metadata
// "authorization: Bearer <token>". It is its own module so that grpc stays
// out of the library's go.mod.
package main

//go:generate bash ../proto/generate.sh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tokenguard/tokenguard/examples/grpc/demov1"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// DefaultAddr is where the example listens unless ADDR or -addr says
// otherwise.
const DefaultAddr = "127.0.0.1:9090"

// tick is how often Watch sends a message.
const tick = 100 * time.Millisecond

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := exampleapp.ParseConfigAt("grpc", DefaultAddr, args, getenv, stderr)
	if err != nil {
		return err
	}
	ready := func(addr string) { fmt.Fprintf(stdout, "gRPC API listening on %s (plaintext HTTP/2)\n", addr) }
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
	srv, stopping, err := newServer(guard.Middleware)
	if err != nil {
		return err
	}
	return serve(ctx, cfg.Addr, srv, stopping, ready)
}

// The Demo methods, by full name.
const (
	methodPing          = "/tokenguard.example.v1.Demo/Ping"
	methodProtectedPing = "/tokenguard.example.v1.Demo/ProtectedPing"
	methodMe            = "/tokenguard.example.v1.Demo/Me"
	methodAdmin         = "/tokenguard.example.v1.Demo/Admin"
	methodWatch         = "/tokenguard.example.v1.Demo/Watch"
)

// newServer returns the gRPC server with its services registered and
// protected, and the function that tells its streams the server is
// stopping.
func newServer(mw *middleware.Middleware) (*grpc.Server, func(), error) {
	g, err := grpcguard.New(mw,
		grpcguard.WithPublic(
			healthpb.Health_ServiceDesc.ServiceName, // the whole service: Check, Watch, List
			"grpc.reflection.v1.ServerReflection",
			"grpc.reflection.v1alpha.ServerReflection",
			methodPing,
		),
		grpcguard.WithMethod(methodAdmin, middleware.Role("admin")),
		// Every other method, ProtectedPing, Me and Watch among them, needs
		// a valid token for the project.
	)
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(g.UnaryServerInterceptor()),
		grpc.StreamInterceptor(g.StreamServerInterceptor()),
	)
	stopping := make(chan struct{})
	demov1.RegisterDemoServer(srv, &demo{stopping: stopping})
	hs := health.NewServer()
	hs.SetServingStatus(demov1.Demo_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	if err := g.VerifyMethods(srv.GetServiceInfo()); err != nil {
		return nil, nil, err
	}
	return srv, sync.OnceFunc(func() {
		hs.Shutdown() // health answers NOT_SERVING from now on
		close(stopping)
	}), nil
}

// demo implements tokenguard.example.v1.Demo.
type demo struct {
	demov1.UnimplementedDemoServer
	stopping <-chan struct{} // closed when the server stops
}

func (*demo) Ping(context.Context, *emptypb.Empty) (*demov1.PingResponse, error) {
	return &demov1.PingResponse{Message: "pong"}, nil
}

func (*demo) ProtectedPing(context.Context, *emptypb.Empty) (*demov1.PingResponse, error) {
	return &demov1.PingResponse{Message: "pong"}, nil
}

func (*demo) Me(ctx context.Context, _ *emptypb.Empty) (*demov1.MeResponse, error) {
	c, ok := middleware.ClaimsFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no claims") // not reached: the method is protected
	}
	return &demov1.MeResponse{Sub: c.Subject, ClientId: c.ClientID, OrgId: c.OrgID, Roles: c.Roles.Names(), Exp: c.Expiry.Unix()}, nil
}

func (*demo) Admin(ctx context.Context, _ *emptypb.Empty) (*demov1.AdminResponse, error) {
	c, ok := middleware.ClaimsFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no claims")
	}
	return &demov1.AdminResponse{Message: "hello, admin", Sub: c.Subject}, nil
}

// Watch sends a message at once and then every 100 ms until the client
// leaves or the server stops. When the token expires or is invalidated,
// grpcguard cancels the stream's context and ends the stream with
// UNAUTHENTICATED.
func (d *demo) Watch(_ *emptypb.Empty, stream grpc.ServerStreamingServer[demov1.WatchResponse]) error {
	ctx := stream.Context()
	t := time.NewTicker(tick)
	defer t.Stop()
	for seq := uint64(1); ; seq++ {
		if err := stream.Send(&demov1.WatchResponse{Seq: seq, Time: time.Now().UnixMilli()}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-d.stopping:
			return status.Error(codes.Unavailable, "server is stopping")
		case <-t.C:
		}
	}
}

// serve serves srv on addr until ctx is done, then stops it: streams are
// told to end, calls under way get 5 s to finish.
func serve(ctx context.Context, addr string, srv *grpc.Server, stopping func(), ready func(addr string)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ready(l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		stopping()
		return err
	case <-ctx.Done():
	}
	stopping()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// announce prints where the API listens and grpcurl commands with the
// development server's tokens.
func announce(stdout io.Writer, d *exampleapp.Dev) func(addr string) {
	return func(addr string) {
		var b strings.Builder // one write, so the banner is never interleaved
		fmt.Fprintf(&b, "gRPC API listening on %s (plaintext HTTP/2)\n\nTry it with grpcurl (github.com/fullstorydev/grpcurl):\n", addr)
		call := func(token, method string) {
			h := ""
			if token != "" {
				h = "-H 'authorization: Bearer " + token + "' "
			}
			fmt.Fprintf(&b, "  grpcurl -plaintext %s%s %s\n", h, addr, strings.TrimPrefix(method, "/"))
		}
		fmt.Fprintf(&b, "  grpcurl -plaintext %s list\n", addr)
		call("", "/grpc.health.v1.Health/Check")
		call("", methodPing)
		call("", methodMe)
		call(d.Admin, methodMe)
		call(d.Admin, methodAdmin)
		call(d.Reader, methodAdmin)
		call(d.Reader, methodWatch)
		fmt.Fprintf(&b, "(Me without a token: Unauthenticated; Admin with the reader's token: PermissionDenied;\n")
		fmt.Fprintf(&b, " Watch streams until you press Ctrl-C or the token expires)\n")
		_, _ = io.WriteString(stdout, b.String())
	}
}

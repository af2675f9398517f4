package grpcguard_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// world is the development authorization server with a project, the API
// application's key file on disk, and two service users.
type world struct {
	srv     *devserver.Server
	project devserver.Project
	keyFile string
	admin   devserver.ServiceUser // roles reader and admin
	reader  devserver.ServiceUser // role reader
}

func newWorld(t testing.TB, opts ...devserver.Option) *world {
	t.Helper()
	srv, err := devserver.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := &world{srv: srv, project: srv.CreateProject("grpc test")}
	app, err := srv.CreateAPIApp(w.project.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.keyFile = filepath.Join(t.TempDir(), "api-key.json")
	if err := os.WriteFile(w.keyFile, app.KeyJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	if w.admin, err = srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"reader", "admin"}}); err != nil {
		t.Fatal(err)
	}
	if w.reader, err = srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: w.project.ID, Roles: []string{"reader"}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// token mints a token of u for the project, with o's other settings.
func (w *world) token(t testing.TB, u devserver.ServiceUser, o devserver.TokenOptions) string {
	t.Helper()
	if o.ProjectIDs == nil {
		o.ProjectIDs = []string{w.project.ID}
	}
	tok, err := w.srv.MintToken(u.UserID, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// guard returns a tokenguard.Guard for the world's API.
func (w *world) guard(t testing.TB, opts ...middleware.Option) *tokenguard.Guard {
	t.Helper()
	opts = append([]middleware.Option{middleware.WithLogger(discard)}, opts...)
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: w.srv.Issuer(), KeyFile: w.keyFile, ProjectID: w.project.ID}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The test service: test.v1.Svc, hand-written so that the tests need no
// generated code. Unary methods answer the caller's subject ("" when
// anonymous); stream methods send it, then one message every 20 ms until the
// client leaves.
const (
	svcName      = "test.v1.Svc"
	mUnary       = "/test.v1.Svc/Unary"
	mAdmin       = "/test.v1.Svc/Admin"
	mScoped      = "/test.v1.Svc/Scoped"
	mPublic      = "/test.v1.Svc/Public"
	mStream      = "/test.v1.Svc/Stream"
	mAdminStream = "/test.v1.Svc/AdminStream"
	mPubStream   = "/test.v1.Svc/PublicStream"
	mScopedStrm  = "/test.v1.Svc/ScopedStream"
	mRudeStream  = "/test.v1.Svc/RudeStream"
	// The benchmark's pair: the same answer from both, so that only the
	// protection differs (see benchMethod).
	mBench       = "/test.v1.Svc/Bench"
	mBenchPublic = "/test.v1.Svc/BenchPublic"
)

// The policy of the test server.
var policy = []grpcguard.Option{
	grpcguard.WithPublic(mPublic, mPubStream, mBenchPublic),
	grpcguard.WithMethods(map[string][]middleware.Requirement{
		mAdmin:       {middleware.Role("admin")},
		mAdminStream: {middleware.Role("admin")},
		mScoped:      {middleware.Scope("profile")},
		mScopedStrm:  {middleware.Scope("profile")},
	}),
}

// streamTick is how often the test streams send.
const streamTick = 20 * time.Millisecond

func subjectOf(ctx context.Context) string {
	if c, ok := middleware.ClaimsFromContext(ctx); ok {
		return c.Subject
	}
	return ""
}

func unaryMethod(name string) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return wrapperspb.String(subjectOf(ctx)), nil }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + svcName + "/" + name}, h)
	}}
}

// benchMethod answers an empty message, protected or not: the benchmark
// compares two methods that differ only in their protection. When
// protected, it reads the caller's identity first, as a real handler does,
// and fails without it.
func benchMethod(name string, protected bool) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) {
			if protected && subjectOf(ctx) == "" {
				return nil, status.Error(codes.Internal, "no claims")
			}
			return &emptypb.Empty{}, nil
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + svcName + "/" + name}, h)
	}}
}

// streamHandler is a server stream: the subject, then ticks until the
// context ends, returning its error as a well-behaved handler does.
func streamHandler(_ any, ss grpc.ServerStream) error {
	if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
		return err
	}
	ctx := ss.Context()
	if err := ss.SendMsg(wrapperspb.String(subjectOf(ctx))); err != nil {
		return err
	}
	t := time.NewTicker(streamTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // a handler that ends quietly: the guard still ends the stream with Unauthenticated
		case <-t.C:
			if err := ss.SendMsg(wrapperspb.String("tick")); err != nil {
				return err
			}
		}
	}
}

// rudeHandler is a stream handler that ignores its context: it sends until
// sending fails.
func rudeHandler(_ any, ss grpc.ServerStream) error {
	if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
		return err
	}
	if err := ss.SendMsg(wrapperspb.String(subjectOf(ss.Context()))); err != nil {
		return err
	}
	for {
		time.Sleep(streamTick)
		if err := ss.SendMsg(wrapperspb.String("tick")); err != nil {
			return err
		}
	}
}

var svcDesc = grpc.ServiceDesc{
	ServiceName: svcName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{unaryMethod("Unary"), unaryMethod("Admin"), unaryMethod("Scoped"), unaryMethod("Public"),
		benchMethod("Bench", true), benchMethod("BenchPublic", false)},
	Streams: []grpc.StreamDesc{
		{StreamName: "Stream", Handler: streamHandler, ServerStreams: true},
		{StreamName: "AdminStream", Handler: streamHandler, ServerStreams: true},
		{StreamName: "PublicStream", Handler: streamHandler, ServerStreams: true},
		{StreamName: "ScopedStream", Handler: streamHandler, ServerStreams: true},
		{StreamName: "RudeStream", Handler: rudeHandler, ServerStreams: true},
		{StreamName: "Echo", Handler: echoHandler, ServerStreams: true, ClientStreams: true},
	},
}

// echoed records what echoHandler received, by message.
var echoed sync.Map

// echoHandler is a bidi stream that echoes each message, recording it.
func echoHandler(_ any, ss grpc.ServerStream) error {
	for {
		in := new(wrapperspb.StringValue)
		if err := ss.RecvMsg(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		echoed.Store(in.GetValue(), true)
		if err := ss.SendMsg(in); err != nil {
			return err
		}
	}
}

// serve starts a gRPC server on a loopback port with the guard's
// interceptors and the test service, and returns a client connection to it.
func serve(t testing.TB, g *grpcguard.Guard) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryServerInterceptor()), grpc.StreamInterceptor(g.StreamServerInterceptor()))
	srv.RegisterService(&svcDesc, struct{}{})
	if err := g.VerifyMethods(srv.GetServiceInfo()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return conn
}

// withAuth returns ctx with the authorization metadata values.
func withAuth(ctx context.Context, values ...string) context.Context {
	for _, v := range values {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

// unary calls method and returns the subject it answered.
func unary(ctx context.Context, conn *grpc.ClientConn, method string, auth ...string) (string, error) {
	out := new(wrapperspb.StringValue)
	err := conn.Invoke(withAuth(ctx, auth...), method, &emptypb.Empty{}, out)
	return out.GetValue(), err
}

// openStream opens a server stream and returns it after its first message,
// the subject; the error is the one the stream ended with if it ended
// before.
func openStream(ctx context.Context, conn *grpc.ClientConn, method string, auth ...string) (grpc.ClientStream, string, error) {
	s, err := conn.NewStream(withAuth(ctx, auth...), &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return nil, "", err
	}
	if err := s.SendMsg(&emptypb.Empty{}); err != nil && !errors.Is(err, io.EOF) {
		return nil, "", err
	}
	if err := s.CloseSend(); err != nil {
		return nil, "", err
	}
	first := new(wrapperspb.StringValue)
	if err := s.RecvMsg(first); err != nil {
		return nil, "", err
	}
	return s, first.GetValue(), nil
}

// drain reads s until it ends and returns how it ended (never io.EOF for a
// stream that ends with a status other than OK).
func drain(s grpc.ClientStream) error {
	for {
		if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

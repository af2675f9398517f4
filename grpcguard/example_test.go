package grpcguard_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// exampleSetup starts the development authorization server (standing in for
// ZITADEL) with a project, the API's key file and a service user with role
// reader, and returns the guard's configuration and a token of that user.
func exampleSetup() (cfg tokenguard.Config, token string, cleanup func()) {
	as, err := devserver.Start()
	if err != nil {
		log.Fatal(err)
	}
	project := as.CreateProject("shop")
	app, _ := as.CreateAPIApp(project.ID)
	dir, _ := os.MkdirTemp("", "grpcguard")
	keyFile := filepath.Join(dir, "api-key.json")
	_ = os.WriteFile(keyFile, app.KeyJSON, 0o600)
	user, _ := as.CreateServiceUser("worker", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader"}})
	token, _ = as.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project.ID}})
	return tokenguard.Config{Issuer: as.Issuer(), KeyFile: keyFile, ProjectID: project.ID}, token, func() {
		as.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	cfg, token, cleanup := exampleSetup()
	defer cleanup()

	guard, err := tokenguard.New(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	g, err := grpcguard.New(guard.Middleware,
		grpcguard.WithPublic("/grpc.health.v1.Health/Check"),                          // no token needed
		grpcguard.WithMethod("/grpc.health.v1.Health/List", middleware.Role("admin")), // a project role
		// every other method: any valid token for the project (WithDefault to change)
	)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(g.UnaryServerInterceptor()),
		grpc.StreamInterceptor(g.StreamServerInterceptor()), // streams end when the token does
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	if err := g.VerifyMethods(srv.GetServiceInfo()); err != nil {
		log.Fatal(err) // a typo in a method name
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Stop()

	// A client: the token travels in the metadata "authorization: Bearer <token>".
	conn, _ := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)

	_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println("Check without a token:", status.Code(err))
	watch, _ := client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	_, err = watch.Recv()
	fmt.Println("Watch without a token:", status.Code(err))
	watch, _ = client.Watch(authed, &healthpb.HealthCheckRequest{})
	_, err = watch.Recv()
	fmt.Println("Watch with the token:", status.Code(err))
	_, err = client.List(authed, &healthpb.HealthListRequest{})
	fmt.Println("List with the token:", status.Code(err), status.Convert(err).Message())
	// Output:
	// Check without a token: OK
	// Watch without a token: Unauthenticated
	// Watch with the token: OK
	// List with the token: PermissionDenied requires project role "admin"
}

// Handlers read the caller from their context, as HTTP handlers do.
func ExampleGuard_UnaryServerInterceptor() {
	cfg, token, cleanup := exampleSetup()
	defer cleanup()
	guard, _ := tokenguard.New(context.Background(), cfg)
	g, _ := grpcguard.New(guard.Middleware)
	intercept := g.UnaryServerInterceptor()

	handler := func(ctx context.Context, _ any) (any, error) {
		claims, _ := middleware.ClaimsFromContext(ctx)
		return claims.Roles.Names(), nil
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	roles, err := intercept(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/shop.v1.Shop/Me"}, handler)
	fmt.Println(roles, err)
	_, err = intercept(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/shop.v1.Shop/Me"}, handler)
	fmt.Println(err)
	// Output:
	// [reader] <nil>
	// rpc error: code = Unauthenticated desc = missing bearer token
}

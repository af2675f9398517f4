// Package grpcguard protects gRPC servers with tokenguard: unary and stream
// server interceptors that check each call's bearer token with the core
// ([middleware.Middleware.Check]) and answer with standard gRPC status codes.
//
// https://grpc.io/docs/guides/auth/ and RFC 6750 for the token itself.
//
// The interceptors are thin: the decision (active, exp, nbf, audience, the
// method's requirements) is the core's, made by the same introspection
// client, with the same cache, singleflight and circuit breaker, whichever
// transport asks. Handlers read the caller with
// [middleware.ClaimsFromContext], as HTTP handlers do:
//
//	guard, err := tokenguard.New(ctx, cfg)
//	g, err := grpcguard.New(guard.Middleware,
//		grpcguard.WithPublic("grpc.health.v1.Health"),                     // a whole service
//		grpcguard.WithMethod("/shop.v1.Shop/Delete", middleware.Role("admin")), // one method
//	)
//	srv := grpc.NewServer(
//		grpc.UnaryInterceptor(g.UnaryServerInterceptor()),
//		grpc.StreamInterceptor(g.StreamServerInterceptor()),
//	)
//	claims, ok := middleware.ClaimsFromContext(ctx) // in a handler
//
// Every method not listed with [WithPublic] needs a valid token; methods not
// listed with [WithMethod] get the requirements of [WithDefault] (none:
// any valid token for the API).
//
// The token travels in the metadata "authorization: Bearer <token>" (see
// [WithMetadataKey] and [WithTokenFunc] for other sources).
//
// # Status codes
//
//	no token                                   Unauthenticated
//	two tokens, over 8 KiB, not a b64token      InvalidArgument
//	inactive, expired, not yet valid, audience  Unauthenticated, the message says how to fix it
//	missing role or scope                       PermissionDenied
//	authorization server unavailable           Unavailable, with a google.rpc.RetryInfo detail
//	this API's own credentials rejected        Internal, "internal error", nothing upstream
//
// Refusals with an RFC 6750 error code (all but a missing token) also carry
// a google.rpc.ErrorInfo detail with domain "tokenguard" and the code as its
// reason: INVALID_REQUEST, INVALID_TOKEN or INSUFFICIENT_SCOPE. A call is never let
// through when the authorization server cannot answer.
//
// # Streams
//
// A stream is checked once, when it opens, and then watched
// ([middleware.Middleware.Watch]): when its token expires or is invalidated
// (tokenguard.Guard.InvalidateSubject, Invalidate), the stream's context is
// cancelled and the stream ends with Unauthenticated, whatever the handler
// returns. Handlers must honour stream.Context(), as every long-running
// gRPC handler should; SendMsg and RecvMsg refuse at once after the end.
// [WithoutStreamWatch] turns this off.
//
// # Caching
//
// grpcguard caches nothing itself; see package introspect. A hot token costs
// a cache lookup and the checks, no network.
//
// # Security
//
// Status messages are the core's client-safe descriptions: they MUST NOT and
// do not carry the token or upstream details. Methods are matched by their
// exact full name; a name in the configuration that the server does not
// serve is a typo that [Guard.VerifyMethods] reports. Unlisted methods are
// protected, never public.
package grpcguard

package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenguard/tokenguard/middleware"
)

// guard is a connect.Interceptor that protects the handlers with the core
// entry point, middleware.Middleware.Check: the same decision as HTTP and
// gRPC, answered with Connect's own error codes. Procedures in public need
// no token; the others need a valid token and their entry in reqs.
// Streams are watched: when the token expires or is invalidated, the
// stream's context is cancelled and the stream ends with unauthenticated.
type guard struct {
	mw     *middleware.Middleware
	public map[string]bool
	reqs   map[string][]middleware.Requirement // by procedure, "/package.Service/Method"
}

func (g *guard) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := g.check(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (g *guard) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (g *guard) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := g.check(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		if _, ok := middleware.ClaimsFromContext(ctx); !ok { // public: nothing to watch
			return next(ctx, conn)
		}
		// Cancelled when the token expires or is invalidated; a decision
		// invalidated before the watch starts is made again, with the
		// procedure's requirements.
		ctx, cancel := g.mw.Watch(ctx, g.reqs[conn.Spec().Procedure]...)
		defer cancel()
		err = next(ctx, &watchedConn{StreamingHandlerConn: conn, ctx: ctx})
		var e *middleware.Error
		if ctx.Err() != nil && errors.As(context.Cause(ctx), &e) {
			return connectError(e) // whatever the handler returned
		}
		return err
	}
}

// check authenticates a call: ctx with the claims, or a *connect.Error.
func (g *guard) check(ctx context.Context, procedure string, h http.Header) (context.Context, error) {
	if g.public[procedure] {
		return ctx, nil
	}
	token, e := middleware.ParseAuthorization(h.Values("Authorization"))
	if e != nil && !errors.Is(e, middleware.ErrNoToken) {
		return nil, connectError(e)
	}
	ctx, e = g.mw.Check(ctx, token, g.reqs[procedure]...)
	if e != nil {
		return nil, connectError(e)
	}
	return ctx, nil
}

// connectError maps a refusal to Connect's codes: invalid_argument (400),
// unauthenticated (401), permission_denied (403), unavailable (503, with a
// google.rpc.RetryInfo detail and Retry-After) and internal (500, "internal
// error" and nothing more). The message is the core's description, written
// for the client.
func connectError(e *middleware.Error) *connect.Error {
	code := connect.CodeInternal
	switch e.StatusCode {
	case http.StatusBadRequest:
		code = connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		code = connect.CodeUnauthenticated
	case http.StatusForbidden:
		code = connect.CodePermissionDenied
	case http.StatusServiceUnavailable:
		code = connect.CodeUnavailable
	}
	msg := e.Description
	if code == connect.CodeInternal || msg == "" {
		msg = "internal error"
	}
	err := connect.NewError(code, errors.New(msg))
	if code == connect.CodeUnavailable {
		ra := e.RetryAfter
		if ra <= 0 {
			ra = middleware.DefaultRetryAfter
		}
		if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(ra)}); derr == nil {
			err.AddDetail(d)
		}
		err.Meta().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	return err
}

// watchedConn refuses to send or receive once the watch ended the stream,
// so that a handler that ignores its context is cut off too, and a message
// that arrives after the invalidation never reaches it.
type watchedConn struct {
	connect.StreamingHandlerConn
	ctx context.Context
}

func (c *watchedConn) ended() error {
	var e *middleware.Error
	if c.ctx.Err() != nil && errors.As(context.Cause(c.ctx), &e) {
		return connectError(e)
	}
	return nil
}

func (c *watchedConn) Send(m any) error {
	if err := c.ended(); err != nil {
		return err
	}
	return c.StreamingHandlerConn.Send(m)
}

func (c *watchedConn) Receive(m any) error {
	if err := c.ended(); err != nil {
		return err
	}
	err := c.StreamingHandlerConn.Receive(m)
	if ended := c.ended(); ended != nil {
		return ended // the revoked caller's message: discarded
	}
	return err
}

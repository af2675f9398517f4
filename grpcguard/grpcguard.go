package grpcguard

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenguard/tokenguard/middleware"
)

// Guard holds the per-method policy of a gRPC server and makes its
// interceptors. It is safe for concurrent use; its configuration is fixed by
// [New].
type Guard struct {
	m       *middleware.Middleware
	rules   map[string]rule // full method or service name
	def     rule
	watch   bool
	key     string
	extract TokenFunc
}

// rule is what a method needs: nothing (public) or a valid token that meets
// reqs.
type rule struct {
	public bool
	reqs   []middleware.Requirement
}

// New returns a Guard that checks tokens with m. Names given to
// [WithMethod] and [WithPublic] must be full method names
// ("/package.Service/Method") or service names ("package.Service"); a
// malformed name, a name given twice, or a name both public and with
// requirements is an error. A nil m is an error.
func New(m *middleware.Middleware, opts ...Option) (*Guard, error) {
	if m == nil {
		return nil, errors.New("grpcguard: nil Middleware")
	}
	c := config{methods: map[string][]middleware.Requirement{}, key: DefaultMetadataKey}
	for _, o := range opts {
		o(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	if c.key == "" {
		return nil, errors.New("grpcguard: empty metadata key")
	}
	g := &Guard{m: m, rules: map[string]rule{}, def: rule{reqs: c.def}, watch: !c.noWatch, key: strings.ToLower(c.key), extract: c.tokenFunc}
	for name, reqs := range c.methods {
		if err := checkName(name); err != nil {
			return nil, err
		}
		g.rules[name] = rule{reqs: reqs}
	}
	for _, name := range c.public {
		if err := checkName(name); err != nil {
			return nil, err
		}
		if r, ok := g.rules[name]; ok {
			if r.public {
				return nil, errorf("%q is public twice", name)
			}
			return nil, errorf("%q is both public and has requirements", name)
		}
		g.rules[name] = rule{public: true}
	}
	return g, nil
}

// checkName accepts "/package.Service/Method" and "package.Service".
func checkName(name string) error {
	if svc, ok := strings.CutPrefix(name, "/"); ok {
		s, m, ok := strings.Cut(svc, "/")
		if ok && s != "" && m != "" && !strings.ContainsAny(m, "/ ") && !strings.ContainsAny(s, " ") {
			return nil
		}
	} else if name != "" && !strings.ContainsAny(name, "/ ") {
		return nil
	}
	return errorf("%q is neither a full method name (/package.Service/Method) nor a service name (package.Service)", name)
}

// rule returns the rule for a full method name: its own, its service's, or
// the default. The service is what precedes the last slash, as grpc-go
// routes; a name of any other shape (no leading slash, more slashes, an
// empty part) gets the default rule, so that no odd path reaching an
// UnknownServiceHandler can borrow a public service's rule.
func (g *Guard) rule(fullMethod string) rule {
	rest, ok := strings.CutPrefix(fullMethod, "/")
	svc, method, two := strings.Cut(rest, "/")
	if !ok || !two || svc == "" || method == "" || strings.Contains(method, "/") {
		return g.def
	}
	if r, ok := g.rules[fullMethod]; ok {
		return r
	}
	if r, ok := g.rules[svc]; ok {
		return r
	}
	return g.def
}

// Public reports whether calls of the full method name go through without a
// token.
func (g *Guard) Public(fullMethod string) bool { return g.rule(fullMethod).public }

// authorize checks the call: ctx unchanged for a public method, ctx with
// the claims for an accepted token, or a status error.
func (g *Guard) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	r := g.rule(fullMethod)
	if r.public {
		return ctx, nil
	}
	token, err := g.token(ctx)
	if err != nil {
		return nil, err
	}
	cc, e := g.m.Check(ctx, token, r.reqs...)
	if e != nil {
		return nil, Status(e).Err()
	}
	return cc, nil
}

// token finds the call's token: "" for none, or a status error.
func (g *Guard) token(ctx context.Context) (string, error) {
	if g.extract != nil {
		token, err := g.extract(ctx)
		if err != nil {
			return "", statusOf(err)
		}
		return token, nil
	}
	token, e := middleware.ParseAuthorization(metadata.ValueFromIncomingContext(ctx, g.key))
	if e != nil {
		if errors.Is(e, middleware.ErrNoToken) {
			return "", nil // the core decides: refused, or anonymous when optional
		}
		return "", Status(e).Err()
	}
	return token, nil
}

// UnaryServerInterceptor returns the interceptor for unary calls: public
// methods go through; other calls go to the handler only with an accepted
// token, their claims in the handler's context, or end with the status of
// the refusal.
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the interceptor for streams: checked as
// unary calls are when they open, then watched (unless
// [WithoutStreamWatch]): when the token expires or is invalidated, the
// stream's context is cancelled, SendMsg and RecvMsg fail, and the stream
// ends with Unauthenticated whatever the handler returns.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := g.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if _, ok := middleware.ClaimsFromContext(ctx); !ok || ctx == ss.Context() { // public, or anonymous
			return handler(srv, ss)
		}
		if !g.watch {
			return handler(srv, &stream{ServerStream: ss, ctx: ctx})
		}
		ctx, cancel := g.m.Watch(ctx, g.rule(info.FullMethod).reqs...) // decided again with them, if invalidated meanwhile
		defer cancel()
		err = handler(srv, &stream{ServerStream: ss, ctx: ctx, watched: true})
		if ended := watchEnded(ctx); ended != nil {
			return ended
		}
		return err
	}
}

// watchEnded returns the status error for a watched context that the core
// cancelled (token expired or invalidated), or nil.
func watchEnded(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	var e *middleware.Error
	if errors.As(context.Cause(ctx), &e) {
		return Status(e).Err()
	}
	return nil
}

// stream is a server stream with the claims in its context and, when
// watched, refusing messages once the watch ended it.
type stream struct {
	grpc.ServerStream
	ctx     context.Context
	watched bool
}

func (s *stream) Context() context.Context { return s.ctx }

func (s *stream) SendMsg(m any) error {
	if s.watched {
		if err := watchEnded(s.ctx); err != nil {
			return err
		}
	}
	return s.ServerStream.SendMsg(m)
}

// RecvMsg refuses once the watch ended the stream, before waiting and
// again after: a message that arrives after the token's invalidation never
// reaches the handler, even one that was already waiting for it.
func (s *stream) RecvMsg(m any) error {
	if !s.watched {
		return s.ServerStream.RecvMsg(m)
	}
	if err := watchEnded(s.ctx); err != nil {
		return err
	}
	err := s.ServerStream.RecvMsg(m)
	if ended := watchEnded(s.ctx); ended != nil {
		return ended // m is the revoked caller's: discarded
	}
	return err
}

// VerifyMethods reports, as one error, every name given to [WithMethod] or
// [WithPublic] that none of the services serves: a typo there would leave a
// method with the default requirements, or protected when meant to be
// public. Pass it grpc.Server.GetServiceInfo() after registering the
// services.
func (g *Guard) VerifyMethods(services map[string]grpc.ServiceInfo) error {
	var errs []error
	names := make([]string, 0, len(g.rules))
	for name := range g.rules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc, method, full := strings.Cut(strings.TrimPrefix(name, "/"), "/")
		info, ok := services[svc]
		switch {
		case !ok:
			errs = append(errs, errorf("%q: the server has no service %q", name, svc))
		case full && !slices.ContainsFunc(info.Methods, func(m grpc.MethodInfo) bool { return m.Name == method }):
			errs = append(errs, errorf("%q: service %q has no method %q", name, svc, method))
		}
	}
	return errors.Join(errs...)
}

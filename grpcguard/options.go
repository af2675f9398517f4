package grpcguard

import (
	"context"

	"github.com/tokenguard/tokenguard/middleware"
)

// DefaultMetadataKey is the metadata key the token is read from unless
// [WithMetadataKey] or [WithTokenFunc] says otherwise.
const DefaultMetadataKey = "authorization"

// Option configures a [Guard].
type Option func(*config)

type config struct {
	methods   map[string][]middleware.Requirement // full method or service name -> requirements
	public    []string
	def       []middleware.Requirement
	noWatch   bool
	key       string
	tokenFunc TokenFunc
	errs      []error // reported by New
}

// WithMethod sets the requirements of a method, given by its full name
// ("/package.Service/Method", as in grpc.UnaryServerInfo.FullMethod), or of
// every method of a service, given by its name ("package.Service"). An entry
// for the method wins over one for its service; both replace [WithDefault].
// Naming the same method or service twice is an error from [New].
func WithMethod(name string, reqs ...middleware.Requirement) Option {
	return func(c *config) {
		if _, dup := c.methods[name]; dup {
			c.errs = append(c.errs, errorf("%q has requirements twice", name))
		}
		c.methods[name] = reqs
	}
}

// WithMethods is [WithMethod] for each entry of m: the map from full method
// (or service) name to requirements that zitadel-go's interceptor takes.
func WithMethods(m map[string][]middleware.Requirement) Option {
	return func(c *config) {
		for name, reqs := range m {
			WithMethod(name, reqs...)(c)
		}
	}
}

// WithDefault sets the requirements of every protected method without its
// own [WithMethod] entry. Default: none, so any valid token for the API will
// do.
func WithDefault(reqs ...middleware.Requirement) Option {
	return func(c *config) { c.def = reqs }
}

// WithPublic lets calls of the methods (full names, "/package.Service/Method")
// or of every method of the services ("package.Service") through without a
// token; their handlers see no claims. Default: none, every method is
// protected. A name both public and with requirements is an error from
// [New].
func WithPublic(names ...string) Option {
	return func(c *config) { c.public = append(c.public, names...) }
}

// WithoutStreamWatch turns off the watching of streams: a stream is checked
// when it opens and then runs until it ends, even past its token's expiry or
// invalidation. Default: streams are watched and end with Unauthenticated.
func WithoutStreamWatch() Option { return func(c *config) { c.noWatch = true } }

// WithMetadataKey reads the token from another metadata key, still as
// "Bearer <token>": for example "x-forwarded-authorization" behind a proxy
// that authenticates itself with "authorization". Keys are lowercase in
// gRPC. Default: [DefaultMetadataKey].
func WithMetadataKey(key string) Option { return func(c *config) { c.key = key } }

// TokenFunc returns the bearer token of an incoming call, or "" for none.
// An error refuses the call: a [*middleware.Error] or an error from
// status.Error keeps its code, any other becomes InvalidArgument with a
// generic message (the error's text is not sent to the client). It must be
// safe for concurrent use.
type TokenFunc func(ctx context.Context) (string, error)

// WithTokenFunc replaces the metadata lookup: f finds the token, for
// example in a custom metadata key without the Bearer scheme. The core still
// checks the token and refuses those that are not RFC 6750 b64tokens.
// Default: the "authorization" metadata, parsed by
// [middleware.ParseAuthorization].
func WithTokenFunc(f TokenFunc) Option { return func(c *config) { c.tokenFunc = f } }

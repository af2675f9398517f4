// Package tokenguard protects HTTP APIs with OAuth 2.0 token introspection
// against ZITADEL or any RFC 7662 authorization server.
//
// [New] wires the parts for the common case: it discovers the introspection
// endpoint from the issuer, authenticates this API with its ZITADEL key file
// (private_key_jwt, RFC 7523), caches results until the token expires, and
// accepts tokens whose audience names the API's project:
//
//	guard, err := tokenguard.New(ctx, tokenguard.Config{
//		Issuer:    "https://my-instance.zitadel.cloud",
//		KeyFile:   "api-key.json",
//		ProjectID: "311111111111111111",
//	})
//	mux.Handle("/api/", guard.Wrap(api))
//	mux.Handle("/api/admin", guard.Require(middleware.Role("admin"))(admin))
//	claims, ok := middleware.ClaimsFromContext(r.Context()) // in a handler
//
// The packages underneath can be used on their own: clientauth (key files,
// client assertions), introspect (the RFC 7662 client and its cache), cache
// (an LRU with per-entry expiry) and middleware (net/http).
//
// # Caching
//
// Results are cached by SHA-256 of the token until the earlier of the token's
// exp and the max TTL (default 5 minutes), inactive results for 30 s, errors
// never; concurrent requests with a new token share one introspection. See
// package introspect.
//
// # Security
//
// The issuer and the introspection endpoint, discovered or configured, MUST
// be https, except on a loopback host, unless Config.InsecureAllowHTTP is
// set; redirects are never followed, so the token and this API's
// credentials go to the introspection endpoint and nowhere else. Tokens and
// keys are never logged or stored; the max TTL bounds how long a revoked token stays accepted, and
// [Guard.Invalidate] ends that at once for one token.
package tokenguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/loopback"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// Config says how a [Guard] reaches the authorization server and what it
// accepts. Issuer, ProjectID and one form of credentials (KeyFile, Key, or
// ClientID with ClientSecret) are required.
type Config struct {
	// Issuer is the authorization server's issuer URL, exactly as its
	// discovery document states it.
	Issuer string
	// ProjectID is the ZITADEL project of this API. Tokens must name it (or
	// the API's client ID) in aud; roles are read for it.
	ProjectID string

	// KeyFile is the path of the API application's ZITADEL key JSON.
	KeyFile string
	// Key is an already parsed key, instead of KeyFile.
	Key *clientauth.Key
	// ClientID and ClientSecret authenticate with client_secret_basic
	// instead of a key.
	ClientID, ClientSecret string

	// Audiences are accepted in aud besides ProjectID. The API's client ID
	// (from the key or ClientID) is always accepted too, because ZITADEL
	// personal access tokens carry only that.
	Audiences []string
	// IntrospectionEndpoint skips discovery when set.
	IntrospectionEndpoint string
	// HTTPClient is used for discovery and introspection, as given. Default:
	// a client on introspect.NewTransport (HTTP/2 where offered, idle
	// connections kept for the in-flight limit).
	HTTPClient *http.Client
	// InsecureAllowHTTP allows a plain-http issuer and introspection
	// endpoint on a non-loopback host (introspect.WithInsecureAllowHTTP).
	InsecureAllowHTTP bool
	// DiscoverInBackground lets New succeed while the authorization server
	// cannot be reached, so that a blip during a deploy does not crash-loop
	// every replica. New still fails at once on local mistakes (missing
	// fields, an unreadable key file, a key of the wrong type) and makes one
	// discovery attempt within its ctx; if that fails, discovery is retried
	// in the background with backoff (0.5 s doubling to 30 s, whenever a
	// request or Guard.Ready needs it), requests are answered 503 with
	// Retry-After until it succeeds, and Guard.Ready reports readiness.
	// Default: false: New fails when discovery fails.
	DiscoverInBackground bool
	// InternalURL, when set, is where discovery and introspection go
	// instead of the issuer's host: an in-cluster address such as
	// http://zitadel.zitadel.svc.cluster.local:8080. The requests carry Host
	// and x-zitadel-instance-host set to the issuer's host, from which
	// ZITADEL picks the instance; the discovery document must still name
	// Issuer exactly, and endpoints on the issuer's host are mapped onto
	// InternalURL. A plain-http InternalURL needs InsecureAllowHTTP unless
	// it is on loopback. Default: none, requests go to the issuer.
	InternalURL string
	// InternalTLSServerName is the name an https InternalURL's certificate
	// is verified for, and sent in SNI. Default: the issuer's host name.
	InternalTLSServerName string
	// LocalJWT verifies JWT access tokens locally, with the issuer's keys
	// (jwks_uri from discovery), and confirms each new one with one
	// introspection in the background instead of waiting for it
	// (introspect.WithLocalJWT); opaque tokens are introspected as usual.
	// New fetches the keys once (with DiscoverInBackground, once discovery
	// succeeds); call Guard.Close to stop their cache. Default: false.
	LocalJWT bool

	// IntrospectOptions tune the introspection client: cache size, max TTL,
	// negative TTL, timeout.
	IntrospectOptions []introspect.Option
	// AssertionOptions tune the client assertions: by default one is reused
	// until shortly before it expires; clientauth.WithFreshAssertions signs
	// one per call.
	AssertionOptions []clientauth.Option
}

// Guard is a [middleware.Middleware] wired to an introspection client. It is
// safe for concurrent use.
type Guard struct {
	*middleware.Middleware
	client *introspect.Client
}

// New checks cfg, reads the key, discovers the introspection endpoint (unless
// cfg.IntrospectionEndpoint is set) and returns a Guard. ctx bounds discovery.
// opts configure the middleware (error handler, logger, leeway, ...).
func New(ctx context.Context, cfg Config, opts ...middleware.Option) (*Guard, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("tokenguard: Config.Issuer is required")
	}
	if cfg.ProjectID == "" {
		return nil, errors.New("tokenguard: Config.ProjectID is required")
	}
	if err := checkIssuer(cfg.Issuer, cfg.InsecureAllowHTTP); err != nil {
		return nil, err
	}
	key, err := loadKey(cfg) // before the network: local mistakes first
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: introspect.NewTransport()}
	}
	if hc, err = internalClient(cfg, hc); err != nil { // see tokenguard_internal.go
		return nil, err
	}
	client, clientID, err := newClient(ctx, cfg, key, hc)
	if err != nil {
		return nil, err
	}
	audiences := append([]string{clientID}, cfg.Audiences...)
	opts = append([]middleware.Option{middleware.WithAudience(audiences...), middleware.WithProjectID(cfg.ProjectID)}, opts...)
	mw, err := middleware.New(client, cfg.ProjectID, opts...)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("tokenguard: %w", err)
	}
	return &Guard{Middleware: mw, client: client}, nil
}

// newClient discovers the introspection endpoint (unless it is configured),
// or defers discovery with cfg.DiscoverInBackground, and returns the
// introspection client and the API's client ID.
func newClient(ctx context.Context, cfg Config, key *clientauth.Key, hc *http.Client) (*introspect.Client, string, error) {
	iopts := []introspect.Option{introspect.WithHTTPClient(hc)}
	if cfg.InsecureAllowHTTP {
		iopts = append(iopts, introspect.WithInsecureAllowHTTP())
	}
	issuer, endpoint, jwksURL := cfg.Issuer, cfg.IntrospectionEndpoint, ""
	if endpoint == "" && !cfg.DiscoverInBackground {
		doc, err := introspect.Discover(ctx, cfg.Issuer, hc)
		if err != nil {
			return nil, "", fmt.Errorf("tokenguard: %w", err)
		}
		issuer, endpoint, jwksURL = doc.Issuer, doc.IntrospectionEndpoint, doc.JwksURI
	}
	if cfg.LocalJWT { // without a jwks_uri yet, the client discovers it when it needs it
		iopts = append(iopts, introspect.WithLocalJWT(introspect.LocalJWT{Issuer: issuer, JWKSURL: jwksURL}))
	}
	iopts = append(iopts, cfg.IntrospectOptions...)
	// Discover checks that the document names cfg.Issuer exactly, so the
	// assertions' audience is the same whether discovery is deferred or not.
	auth, clientID, err := credentials(cfg, key, issuer)
	if err != nil {
		return nil, "", err
	}
	var client *introspect.Client
	if endpoint != "" {
		client, err = introspect.New(endpoint, auth, iopts...) // checks the endpoint as checkIssuer does the issuer
	} else {
		client, err = introspect.NewDeferred(func(ctx context.Context) (string, error) {
			doc, err := introspect.Discover(ctx, cfg.Issuer, hc)
			if err != nil {
				return "", err
			}
			return doc.IntrospectionEndpoint, nil
		}, auth, iopts...)
		if err == nil {
			_ = client.Ready(ctx) // one attempt within ctx; on failure, retried later
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("tokenguard: %w", err)
	}
	if cfg.LocalJWT {
		if err := client.FetchJWKS(ctx); err != nil && !cfg.DiscoverInBackground {
			_ = client.Close()
			return nil, "", fmt.Errorf("tokenguard: Config.LocalJWT: %w", err)
		}
	}
	return client, clientID, nil
}

// Ready reports whether the guard can decide requests: nil once the
// introspection endpoint is known (at once, unless
// Config.DiscoverInBackground deferred discovery), else the discovery error
// after one attempt within ctx. See [Guard.ReadyHandler] for probes.
func (g *Guard) Ready(ctx context.Context) error { return g.client.Ready(ctx) }

// ReadyHandler serves readiness probes: 200 {"status":"ready"} once
// [Guard.Ready] is nil, else 503 {"status":"not ready"} with Retry-After,
// each probe waiting at most 2 s. The body names no URL and no error:
// [Guard.Ready] returns the reason.
func (g *Guard) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := g.Ready(ctx); err != nil {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(introspect.RetryAfter(err).Round(time.Second)/time.Second))))
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
}

// Close stops the background work of Config.LocalJWT (the cache of the
// issuer's keys) and waits for it; JWTs are introspected from then on.
// Without LocalJWT there is nothing to stop. It is safe to call more than
// once.
func (g *Guard) Close() error { return g.client.Close() }

// Client returns the introspection client, for direct use.
func (g *Guard) Client() *introspect.Client { return g.client }

// Invalidate drops the cached result for token, so that its next request is
// introspected again: call it when you learn a token was revoked.
func (g *Guard) Invalidate(token string) { g.client.Invalidate(token) }

// InvalidateSubject makes every cached result of the subject (a user) stale,
// so that its tokens are introspected again on their next request: call it
// when a user is locked, deactivated or removed.
func (g *Guard) InvalidateSubject(subject string) { g.client.InvalidateSubject(subject) }

// InvalidateTokenID makes every cached result of the token whose ID (the
// jti of its introspection answer) is jti stale, so that it is introspected
// again on its next request, while the user's other tokens stay cached:
// call it when one token is revoked and you know its ID but not the token,
// as ZITADEL's user.token.removed and user.pat.removed events tell (package
// events does). Like the other Invalidate methods it is safe for concurrent
// use and reaches every replica through a shared cache that tells them
// about invalidations.
func (g *Guard) InvalidateTokenID(jti string) { g.client.InvalidateTokenID(jti) }

// loadKey checks that exactly one form of credentials is set and returns the
// key, or nil for client_secret_basic.
func loadKey(cfg Config) (*clientauth.Key, error) {
	n := 0
	for _, set := range []bool{cfg.KeyFile != "", cfg.Key != nil, cfg.ClientSecret != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("tokenguard: set exactly one of Config.KeyFile, Config.Key, or Config.ClientID with Config.ClientSecret")
	}
	switch {
	case cfg.ClientSecret != "":
		if cfg.ClientID == "" {
			return nil, errors.New("tokenguard: Config.ClientSecret needs Config.ClientID")
		}
		return nil, nil
	case cfg.Key != nil:
		return checkKeyType(cfg.Key)
	}
	key, err := clientauth.LoadKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tokenguard: %w", err)
	}
	return checkKeyType(key)
}

func checkKeyType(key *clientauth.Key) (*clientauth.Key, error) {
	if key.Type != clientauth.TypeApplication {
		return nil, fmt.Errorf("tokenguard: key %s has type %q; the API needs its application key (type \"application\"), created under the API application in the ZITADEL console", key.KeyID, key.Type)
	}
	return key, nil
}

// credentials returns how to authenticate to the issuer, and as whom.
func credentials(cfg Config, key *clientauth.Key, issuer string) (introspect.ClientAuthenticator, string, error) {
	if key == nil {
		return clientauth.ClientSecretBasic{ClientID: cfg.ClientID, Secret: cfg.ClientSecret}, cfg.ClientID, nil
	}
	auth, err := key.PrivateKeyJWT(issuer, cfg.AssertionOptions...)
	if err != nil {
		return nil, "", fmt.Errorf("tokenguard: %w", err)
	}
	return auth, key.ClientID, nil
}

// checkIssuer refuses a plain-http issuer unless it is on a loopback host or
// explicitly allowed.
func checkIssuer(issuer string, allowHTTP bool) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("tokenguard: issuer %q is not an absolute URL", issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP || loopback.Host(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("tokenguard: issuer %q uses plain http; use https, or set InsecureAllowHTTP for a trusted network", issuer)
	}
	return fmt.Errorf("tokenguard: issuer %q must be an https URL", issuer)
}

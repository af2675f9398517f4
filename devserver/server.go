package devserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/tokenguard/tokenguard/events"
)

// ZITADEL's endpoint paths, which the server uses too.
const (
	TokenPath      = "/oauth/v2/token"
	IntrospectPath = "/oauth/v2/introspect"
	RevokePath     = "/oauth/v2/revoke"
	KeysPath       = "/oauth/v2/keys"
)

// InstanceHostHeader is the header from which ZITADEL, and this server with
// [WithIssuer], pick the instance a request is for, before the Host header.
const InstanceHostHeader = "X-Zitadel-Instance-Host"

// DefaultTokenLifetime is ZITADEL's default access token lifetime.
const DefaultTokenLifetime = 12 * time.Hour

// Option configures a [Server].
type Option func(*config)

type config struct {
	addr     string
	lifetime time.Duration
	jwt      bool
	delay    time.Duration
	now      func() time.Time
	issuer   string      // WithIssuer
	tls      *tls.Config // WithTLS
	observe  func(*http.Request)
}

// WithAddr sets the listen address. Default: "127.0.0.1:0", a free loopback
// port. Listening beyond loopback exposes a server that mints tokens for
// anyone: only for trusted networks.
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithTokenLifetime sets the access token lifetime. Default:
// [DefaultTokenLifetime] (12 h).
func WithTokenLifetime(d time.Duration) Option { return func(c *config) { c.lifetime = d } }

// WithJWTAccessTokens makes the token endpoint issue JWT access tokens.
// Default: opaque tokens, as ZITADEL issues for API access.
func WithJWTAccessTokens() Option { return func(c *config) { c.jwt = true } }

// WithIntrospectionDelay delays every introspection answer by d, to measure
// or test a slow authorization server. Default: none.
func WithIntrospectionDelay(d time.Duration) Option { return func(c *config) { c.delay = d } }

// WithClock sets the clock for token lifetimes and expiry checks. Default:
// [time.Now]. Assertion checks by the op package keep using real time.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithIssuer makes the server name itself issuer (in discovery, tokens and
// the audience it expects of client assertions) while it listens on its
// loopback address, as ZITADEL does behind a load balancer or ingress: for
// example "https://auth.example.com" or "http://zitadel.example:8080".
// Like ZITADEL, which picks the instance from the host a request names, it
// then answers 404 "instance not found" to every request whose
// x-zitadel-instance-host header, or else whose Host, is not the issuer's
// host. Reach it at [Server.URL] with those headers set, as
// tokenguard.Config.InternalURL does. issuer must be an absolute http or
// https URL without path, query or fragment. Default: the listen URL, with
// no host check.
func WithIssuer(issuer string) Option { return func(c *config) { c.issuer = issuer } }

// WithTLS makes the server speak https with cfg, which must carry a
// certificate (Certificates, GetCertificate or GetConfigForClient); the
// default issuer is then https://127.0.0.1:PORT. cfg is cloned. Default:
// plain http.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithRequestObserver calls f with every request before the server handles
// it, for tests that check what reaches the server (the Host header, say).
// f runs on the request's goroutine, must be safe for concurrent use and
// must not read the body or keep r. Default: none.
func WithRequestObserver(f func(r *http.Request)) Option { return func(c *config) { c.observe = f } }

// FaultFunc may answer an introspection request itself (and return true), to
// simulate a failing authorization server.
type FaultFunc func(w http.ResponseWriter, r *http.Request) bool

// Server is a running development authorization server. Its methods are
// safe for concurrent use.
type Server struct {
	issuer   string
	url      string              // where it listens: scheme://127.0.0.1:PORT
	instance string              // the issuer's host, with WithIssuer; "" for no host check
	observe  func(*http.Request) // WithRequestObserver
	store    *storage
	provider *op.Provider
	srv      *http.Server
	done     chan struct{}

	introspections atomic.Int64

	mu      sync.Mutex // guards delay, fault and targets
	delay   time.Duration
	fault   FaultFunc
	targets []eventTarget
	seq     uint64
}

type eventTarget struct {
	url string
	key []byte
}

// Start starts a server on 127.0.0.1 (see [WithAddr]) and returns once it
// accepts connections. Close it when done.
func Start(opts ...Option) (*Server, error) {
	cfg := config{addr: "127.0.0.1:0", lifetime: DefaultTokenLifetime, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.lifetime <= 0 {
		return nil, fmt.Errorf("devserver: token lifetime %v must be positive", cfg.lifetime)
	}
	var instance string
	if cfg.issuer != "" {
		var err error
		if instance, err = issuerHost(cfg.issuer); err != nil {
			return nil, err
		}
	}
	var tlsConfig *tls.Config
	if cfg.tls != nil {
		if len(cfg.tls.Certificates) == 0 && cfg.tls.GetCertificate == nil && cfg.tls.GetConfigForClient == nil {
			return nil, errors.New("devserver: the TLS config has no certificate")
		}
		tlsConfig = cfg.tls.Clone()
	}
	signing, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	host := l.Addr().String()
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		l = tls.NewListener(l, tlsConfig)
	}
	s := &Server{issuer: scheme + "://" + host, url: scheme + "://" + host, instance: instance, observe: cfg.observe,
		delay: cfg.delay, done: make(chan struct{})}
	if cfg.issuer != "" {
		s.issuer = cfg.issuer
	}
	tokenType := op.AccessTokenTypeBearer
	if cfg.jwt {
		tokenType = op.AccessTokenTypeJWT
	}
	s.store = &storage{
		signing: signingKey{signing, newID()}, tokenType: tokenType, lifetime: cfg.lifetime, now: cfg.now,
		org: Org{ID: newID(), Name: "ACME", Domain: "acme.localhost"}, admin: newID(),
		projects: map[string]*Project{}, apps: map[string]*app{}, users: map[string]*user{}, tokens: map[string]*token{},
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		l.Close()
		return nil, err
	}
	s.provider, err = op.NewProvider(&op.Config{CryptoKey: cryptoKey, AuthMethodPrivateKeyJWT: true}, s.store, op.StaticIssuer(s.issuer),
		op.WithAllowInsecure(),
		op.WithCustomEndpoints(
			op.NewEndpoint("oauth/v2/authorize"), op.NewEndpoint(strings.TrimPrefix(TokenPath, "/")),
			op.NewEndpoint("oidc/v1/userinfo"), op.NewEndpoint(strings.TrimPrefix(RevokePath, "/")),
			op.NewEndpoint("oidc/v1/end_session"), op.NewEndpoint(strings.TrimPrefix(KeysPath, "/"))),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(strings.TrimPrefix(IntrospectPath, "/"))),
	)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("devserver: %w", err)
	}
	s.store.onRevoke = func(t *token) {
		payload, _ := json.Marshal(map[string]string{"tokenId": t.id})
		s.emit("user", t.subject, "user.token.removed", t.subject, payload) // revoked by its holder
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s, nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.observe != nil {
		s.observe(r)
	}
	if s.instance != "" {
		host := r.Header.Get(InstanceHostHeader)
		if host == "" {
			host = r.Host
		}
		if h, err := issuerHost(s.scheme() + "://" + host); err != nil || h != s.instance {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "instance not found: no instance for host %q (the instance is picked from x-zitadel-instance-host, else Host; this one is %q)\n", host, s.instance)
			return
		}
	}
	if r.URL.Path == IntrospectPath {
		s.introspections.Add(1)
		s.mu.Lock()
		delay, fault := s.delay, s.fault
		s.mu.Unlock()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fault != nil && fault(w, r) {
			return
		}
	}
	s.provider.ServeHTTP(w, r)
}

// Issuer returns the issuer URL: http://127.0.0.1:PORT (https with
// [WithTLS]), or the one set by [WithIssuer].
func (s *Server) Issuer() string { return s.issuer }

// URL returns where the server listens: http://127.0.0.1:PORT, or https
// with [WithTLS]. It is the issuer unless [WithIssuer] names another.
func (s *Server) URL() string { return s.url }

func (s *Server) scheme() string {
	scheme, _, _ := strings.Cut(s.issuer, ":")
	return scheme
}

// issuerHost checks a [WithIssuer] URL and returns its host in lower case,
// without the scheme's default port, for comparing with a request's host.
func issuerHost(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("devserver: issuer %q must be an absolute http or https URL with no path, query or fragment", issuer)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return host, nil
}

// Org returns the organization all users belong to.
func (s *Server) Org() Org { return s.store.org }

// Close stops the server and waits for it.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// IntrospectionCalls returns how many requests reached the introspection
// endpoint.
func (s *Server) IntrospectionCalls() int64 { return s.introspections.Load() }

// SetIntrospectionDelay changes the delay of introspection answers.
func (s *Server) SetIntrospectionDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetIntrospectionFault installs f in front of the introspection endpoint;
// nil removes it.
func (s *Server) SetIntrospectionFault(f FaultFunc) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// CreateProject creates a project.
func (s *Server) CreateProject(name string) Project {
	p := &Project{ID: newID(), Name: name}
	s.store.mu.Lock()
	s.store.projects[p.ID] = p
	s.store.mu.Unlock()
	return *p
}

// RotateSigningKey makes a new key sign the JWTs issued from now on, under
// a new key ID, and returns that ID. The JWKS ([KeysPath]) publishes it at
// once; earlier keys stay published, as ZITADEL keeps them until the
// tokens they signed expire, so that those tokens still verify.
func (s *Server) RotateSigningKey() (kid string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	next := signingKey{k, newID()}
	s.store.mu.Lock()
	s.store.retired = append(s.store.retired, s.store.signing)
	s.store.signing = next
	s.store.mu.Unlock()
	return next.id, nil
}

// SigningKeyID returns the key ID (the kid header) of the key that signs
// new JWTs.
func (s *Server) SigningKeyID() string {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	return s.store.signing.id
}

// SetRoleAssertion says whether JWT access tokens whose audience names the
// project carry the user's role claims, as ZITADEL's "assert roles on
// authentication" project setting does. Default: on. Introspection
// answers carry the roles either way.
func (s *Server) SetRoleAssertion(projectID string, on bool) error {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if s.store.projects[projectID] == nil {
		return fmt.Errorf("devserver: no project %q", projectID)
	}
	if s.store.noRoleJWTs == nil {
		s.store.noRoleJWTs = map[string]bool{}
	}
	s.store.noRoleJWTs[projectID] = !on
	return nil
}

// CreateAPIApp creates an API application in the project that authenticates
// with private_key_jwt, and returns it with its key file.
func (s *Server) CreateAPIApp(projectID string) (App, error) { return s.createApp(projectID, false) }

// CreateAPIAppWithSecret creates an API application in the project that
// authenticates with client_secret_basic.
func (s *Server) CreateAPIAppWithSecret(projectID string) (App, error) {
	return s.createApp(projectID, true)
}

func (s *Server) createApp(projectID string, secret bool) (App, error) {
	s.store.mu.Lock()
	p := s.store.projects[projectID]
	s.store.mu.Unlock()
	if p == nil {
		return App{}, fmt.Errorf("devserver: no project %q", projectID)
	}
	a := &app{App: App{ProjectID: projectID, AppID: newID()}}
	a.ClientID = a.AppID + "@" + strings.ToLower(strings.ReplaceAll(p.Name, " ", "_"))
	if secret {
		a.Secret = newSecret()
	} else {
		var err error
		a.keyID, a.pubKey, a.KeyJSON, err = newKey(map[string]string{"type": "application", "appId": a.AppID, "clientId": a.ClientID})
		if err != nil {
			return App{}, err
		}
	}
	s.store.mu.Lock()
	s.store.apps[a.ClientID] = a
	s.store.mu.Unlock()
	return a.App, nil
}

// CreateServiceUser creates a service user with a key (for the jwt-bearer
// grant) and a secret (for client_credentials), and the given grants.
func (s *Server) CreateServiceUser(username string, grants ...Grant) (ServiceUser, error) {
	if username == "" {
		return ServiceUser{}, errors.New("devserver: empty username")
	}
	u := &user{ServiceUser: ServiceUser{UserID: newID(), Username: username, OrgID: s.store.org.ID, Secret: newSecret()},
		grants: map[string][]string{}, grantIDs: map[string]string{}}
	var err error
	u.keyID, u.pubKey, u.KeyJSON, err = newKey(map[string]string{"type": "serviceaccount", "userId": u.UserID})
	if err != nil {
		return ServiceUser{}, err
	}
	s.store.mu.Lock()
	if s.store.userByIDOrName(username) != nil {
		s.store.mu.Unlock()
		return ServiceUser{}, fmt.Errorf("devserver: user %q exists", username)
	}
	var added []string // projects in the order first granted
	for _, g := range grants {
		if s.store.projects[g.ProjectID] == nil {
			s.store.mu.Unlock()
			return ServiceUser{}, fmt.Errorf("devserver: no project %q", g.ProjectID)
		}
		if _, ok := u.grantIDs[g.ProjectID]; !ok {
			u.grantIDs[g.ProjectID] = newID()
			added = append(added, g.ProjectID)
		}
		u.grants[g.ProjectID] = append(u.grants[g.ProjectID], g.Roles...)
	}
	s.store.users[u.UserID] = u
	type event struct {
		grantID string
		payload []byte
	}
	events := make([]event, 0, len(added))
	for _, p := range added {
		events = append(events, event{u.grantIDs[p], grantAddedPayload(u.UserID, p, u.grants[p])})
	}
	s.store.mu.Unlock()
	for _, e := range events {
		s.emit(grantAggregate, e.grantID, "user.grant.added", s.store.admin, e.payload)
	}
	return u.ServiceUser, nil
}

// grantAggregate is the aggregate type of ZITADEL's user grant events.
const grantAggregate = "usergrant"

// grantAddedPayload is user.grant.added's payload, as ZITADEL's
// UserGrantAddedEvent encodes it.
func grantAddedPayload(userID, projectID string, roles []string) []byte {
	p, _ := json.Marshal(struct {
		UserID    string   `json:"userId,omitempty"`
		ProjectID string   `json:"projectId,omitempty"`
		RoleKeys  []string `json:"roleKeys,omitempty"`
	}{userID, projectID, roles})
	return p
}

// grantChangedPayload is user.grant.changed's payload, as ZITADEL's
// UserGrantChangedEvent encodes it: the grant's roles after the change.
func grantChangedPayload(roles []string) []byte {
	if roles == nil {
		roles = []string{}
	}
	p, _ := json.Marshal(struct {
		RoleKeys []string `json:"roleKeys"`
	}{roles})
	return p
}

// SetRoles replaces the user's roles in a project, granting the user the
// project first if it has no grant there; it takes effect at the next
// introspection. As ZITADEL does, it sends user.grant.added for a new grant
// and user.grant.changed (with the roles after the change, possibly none)
// for an existing one to the event targets, with the grant's ID as the
// aggregate.
func (s *Server) SetRoles(userID, projectID string, roles ...string) error {
	roles = slices.Clone(roles)
	s.store.mu.Lock()
	u := s.store.users[userID]
	if u == nil || s.store.projects[projectID] == nil {
		s.store.mu.Unlock()
		return fmt.Errorf("devserver: no user %q or project %q", userID, projectID)
	}
	u.grants[projectID] = roles
	id, existed := u.grantIDs[projectID]
	if !existed {
		id = newID()
		u.grantIDs[projectID] = id
	}
	s.store.mu.Unlock()
	if existed {
		s.emit(grantAggregate, id, "user.grant.changed", s.store.admin, grantChangedPayload(roles))
	} else {
		s.emit(grantAggregate, id, "user.grant.added", s.store.admin, grantAddedPayload(userID, projectID, roles))
	}
	return nil
}

// RemoveGrant removes the user's grant in a project, and its roles with it;
// it takes effect at the next introspection. It sends user.grant.removed,
// whose payload (as ZITADEL's) names neither the user nor the project, to
// the event targets.
func (s *Server) RemoveGrant(userID, projectID string) error {
	s.store.mu.Lock()
	u := s.store.users[userID]
	var id string
	if u != nil {
		id = u.grantIDs[projectID]
	}
	if id == "" {
		s.store.mu.Unlock()
		return fmt.Errorf("devserver: user %q has no grant in project %q", userID, projectID)
	}
	delete(u.grants, projectID)
	delete(u.grantIDs, projectID)
	s.store.mu.Unlock()
	s.emit(grantAggregate, id, "user.grant.removed", s.store.admin, nil)
	return nil
}

// GrantID returns the ID of the user's grant in a project, the aggregate of
// its events, or "" when there is none.
func (s *Server) GrantID(userID, projectID string) string {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if u := s.store.users[userID]; u != nil {
		return u.grantIDs[projectID]
	}
	return ""
}

// LockUser locks (or unlocks) a user: its tokens become inactive and it can
// get no new ones. Locking sends a user.locked event to the event targets.
func (s *Server) LockUser(userID string, locked bool) error {
	s.store.mu.Lock()
	u := s.store.users[userID]
	if u != nil {
		u.locked = locked
	}
	s.store.mu.Unlock()
	if u == nil {
		return fmt.Errorf("devserver: no user %q", userID)
	}
	if locked {
		s.emit("user", userID, "user.locked", s.store.admin, []byte(`{}`))
	}
	return nil
}

// AddEventTarget registers a webhook that receives ZITADEL Actions v2 style
// events, signed as ZITADEL signs them (ZITADEL-Signature), when a user is
// locked (user.locked), a token revoked (user.token.removed), or a user
// grant added, changed or removed (user.grant.added, user.grant.changed,
// user.grant.removed: see [Server.SetRoles] and [Server.RemoveGrant]). The
// body's userID is the event's editor, as in ZITADEL: the development
// server's administrator, or the token's holder for a revocation. It returns
// the target's signing key, as ZITADEL's CreateTarget does. Events are sent
// synchronously, before the call that caused them returns.
func (s *Server) AddEventTarget(url string) (signingKey string) {
	key := newSecret()
	s.mu.Lock()
	s.targets = append(s.targets, eventTarget{url: url, key: []byte(key)})
	s.mu.Unlock()
	return key
}

// emit sends one event about an aggregate, caused by editor, to every
// target; delivery failures are dropped, as ZITADEL's async targets may drop
// them. A nil payload is sent as null, as ZITADEL sends events without one.
func (s *Server) emit(aggregateType, aggregateID, eventType, editor string, payload []byte) {
	s.mu.Lock()
	targets := slices.Clone(s.targets)
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	if payload == nil {
		payload = []byte("null")
	}
	body, _ := json.Marshal(map[string]any{
		"aggregateID": aggregateID, "aggregateType": aggregateType, "resourceOwner": s.store.org.ID,
		"instanceID": s.store.org.ID, "version": "v2", "sequence": seq, "event_type": eventType,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano), "userID": editor, "event_payload": json.RawMessage(payload),
	})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, t := range targets {
		req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ZITADEL-Signature", events.Sign(body, time.Now(), t.key))
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// TokenOptions describe a token minted directly by [Server.MintToken].
type TokenOptions struct {
	// ProjectIDs are put in aud, as the project audience scopes do.
	ProjectIDs []string
	// Audience is added to aud as is: an API application's client ID makes
	// a token like a ZITADEL personal access token.
	Audience []string
	// Scopes are added to openid and the project audience scopes.
	Scopes []string
	// Lifetime overrides the server's token lifetime.
	Lifetime time.Duration
	// JWT mints a JWT access token instead of an opaque one.
	JWT bool
	// Issuer, with JWT, signs the token as issued by another issuer, with
	// this server's key: for tests that an API refuses tokens whose iss
	// is not its issuer's. Introspection answers such a token inactive.
	Issuer string
}

// MintToken issues an access token for the user without the token endpoint.
func (s *Server) MintToken(userID string, o TokenOptions) (string, error) {
	scopes := []string{oidc.ScopeOpenID}
	for _, p := range o.ProjectIDs {
		scopes = append(scopes, ProjectAudienceScope(p))
	}
	scopes = append(scopes, o.Scopes...)
	kept, err := s.store.validateScopes(userID, scopes)
	if err != nil {
		return "", fmt.Errorf("devserver: %w", err)
	}
	req := &tokenRequest{subject: userID, clientID: userID, audience: append(audienceFromScopes(kept), o.Audience...), scopes: kept, lifetime: o.Lifetime}
	typ := op.AccessTokenTypeBearer
	if o.JWT {
		typ = op.AccessTokenTypeJWT
	}
	iss := s.issuer
	if o.Issuer != "" {
		iss = o.Issuer
	}
	ctx := op.ContextWithIssuer(context.Background(), iss)
	tok, _, _, err := op.CreateAccessToken(ctx, req, typ, s.provider, &client{id: userID, tokenType: typ}, "")
	if err != nil {
		return "", fmt.Errorf("devserver: %w", err)
	}
	return tok, nil
}

// Revoke revokes an access token the server issued. Unknown tokens are an
// error.
func (s *Server) Revoke(accessToken string) error {
	id, ok := s.tokenID(accessToken)
	if !ok {
		return errors.New("devserver: not a token of this server")
	}
	s.store.mu.Lock()
	t := s.store.tokens[id]
	if t != nil {
		t.revoked = true
	}
	s.store.mu.Unlock()
	if t == nil {
		return errors.New("devserver: unknown token")
	}
	if s.store.onRevoke != nil {
		s.store.onRevoke(t)
	}
	return nil
}

// tokenID recovers the token ID of an opaque or JWT access token.
func (s *Server) tokenID(accessToken string) (string, bool) {
	if plain, err := s.provider.Crypto().Decrypt(accessToken); err == nil {
		id, _, ok := strings.Cut(plain, ":")
		return id, ok
	}
	ctx := op.ContextWithIssuer(context.Background(), s.issuer)
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, accessToken, s.provider.AccessTokenVerifier(ctx))
	if err != nil {
		return "", false
	}
	return claims.JWTID, true
}

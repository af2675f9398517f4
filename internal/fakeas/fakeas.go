// Package fakeas is a small in-process authorization server for tests: OpenID
// discovery and an RFC 7662 introspection endpoint that authenticates its
// callers like ZITADEL (private_key_jwt checked by kid, iss = sub = client ID,
// aud = issuer, iat at most an hour old; or client_secret_basic) and answers
// active only for tokens whose aud names the caller's client or project.
//
// It counts introspection calls and can delay or fail them. It is not an
// OpenID Provider: tokens are minted directly with [Server.Mint].
package fakeas

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// IntrospectPath is the introspection endpoint path, as in ZITADEL.
const IntrospectPath = "/oauth/v2/introspect"

// Token describes a minted token.
type Token struct {
	Subject  string
	ClientID string
	Username string
	OrgID    string
	Audience []string
	Scopes   []string
	Roles    map[string]map[string]string // role -> org ID -> domain
	Expiry   time.Time
	// Extra claims added to the introspection response as they are.
	Extra map[string]any
}

type client struct {
	clientID  string
	projectID string
	pub       *rsa.PublicKey
	secret    string
}

// Server is a running fake authorization server. Its methods are safe for
// concurrent use.
type Server struct {
	*httptest.Server
	Issuer string

	calls    atomic.Int64
	answered atomic.Int64

	mu      sync.Mutex         // guards the fields below
	clients map[string]*client // by key ID, or by client ID for secrets
	tokens  map[string]*Token
	revoked map[string]bool
	delay   time.Duration
	fault   func(w http.ResponseWriter) bool
	now     func() time.Time
}

// Start starts a Server on a loopback port. Close it when done.
func Start() *Server {
	s := &Server{clients: map[string]*client{}, tokens: map[string]*Token{}, revoked: map[string]bool{}, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("POST "+IntrospectPath, s.introspect)
	s.Server = httptest.NewServer(mux)
	s.Issuer = s.URL
	return s
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                 s.Issuer,
		"introspection_endpoint": s.Issuer + IntrospectPath,
		"token_endpoint":         s.Issuer + "/oauth/v2/token",
		"jwks_uri":               s.Issuer + "/oauth/v2/keys",
		"introspection_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic"},
	})
}

// Calls returns how many introspection requests reached the server.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Answered returns how many introspection requests the server answered
// itself (authenticated, no fault), active or not.
func (s *Server) Answered() int64 { return s.answered.Load() }

// SetDelay delays every introspection answer by d.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// SetFault installs f, which may write a response of its own and return true
// to stop the introspection there. nil removes it.
func (s *Server) SetFault(f func(w http.ResponseWriter) bool) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// NewApp registers an API application of projectID and returns its ZITADEL
// key file ({"type":"application",...}) and client ID.
func (s *Server) NewApp(projectID string) (keyJSON []byte, clientID string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	keyID, appID := randomID(), randomID()
	clientID = appID + "@" + projectID
	s.mu.Lock()
	s.clients[keyID] = &client{clientID: clientID, projectID: projectID, pub: &k.PublicKey}
	s.mu.Unlock()
	keyJSON, _ = json.Marshal(map[string]string{
		"type": "application", "keyId": keyID, "appId": appID, "clientId": clientID,
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	return keyJSON, clientID
}

// NewSecretApp registers an API application of projectID that authenticates
// with client_secret_basic.
func (s *Server) NewSecretApp(projectID string) (clientID, secret string) {
	clientID, secret = randomID()+"@"+projectID, randomID()
	s.mu.Lock()
	s.clients[clientID] = &client{clientID: clientID, projectID: projectID, secret: secret}
	s.mu.Unlock()
	return clientID, secret
}

// Mint stores t and returns a new opaque token for it. A zero Expiry means
// an hour from now.
func (s *Server) Mint(t Token) string {
	tok := randomID() + randomID()
	s.mu.Lock()
	if t.Expiry.IsZero() {
		t.Expiry = s.now().Add(time.Hour)
	}
	s.tokens[tok] = &t
	s.mu.Unlock()
	return tok
}

// Alias makes alias introspect as token does.
func (s *Server) Alias(alias, token string) {
	s.mu.Lock()
	s.tokens[alias] = s.tokens[token]
	s.mu.Unlock()
}

// Revoke makes token inactive.
func (s *Server) Revoke(token string) { s.mu.Lock(); s.revoked[token] = true; s.mu.Unlock() }

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.mu.Lock()
	delay, fault := s.delay, s.fault
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fault != nil && fault(w) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	c, why := s.authenticate(r)
	if c == nil {
		writeErr(w, http.StatusUnauthorized, "invalid_client", why)
		return
	}
	s.answered.Add(1)
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	t, ok := s.tokens[r.PostForm.Get("token")]
	revoked := s.revoked[r.PostForm.Get("token")]
	now := s.now()
	s.mu.Unlock()
	if !ok || revoked || !now.Before(t.Expiry) || !(slices.Contains(t.Audience, c.clientID) || slices.Contains(t.Audience, c.projectID)) {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	resp := map[string]any{
		"active": true, "sub": t.Subject, "client_id": t.ClientID, "aud": t.Audience,
		"exp": t.Expiry.Unix(), "iat": now.Unix(), "iss": s.Issuer, "jti": randomID(),
		"token_type": "Bearer", "scope": strings.Join(t.Scopes, " "),
	}
	if t.Username != "" {
		resp["username"] = t.Username
	}
	if t.OrgID != "" {
		resp["urn:zitadel:iam:user:resourceowner:id"] = t.OrgID
	}
	if t.Roles != nil {
		resp["urn:zitadel:iam:org:project:roles"] = t.Roles
		resp["urn:zitadel:iam:org:project:"+c.projectID+":roles"] = t.Roles
	}
	for k, v := range t.Extra {
		resp[k] = v
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) authenticate(r *http.Request) (*client, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, secret, ok := r.BasicAuth(); ok {
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		c := s.clients[id]
		if err1 != nil || err2 != nil {
			return nil, "malformed basic credentials"
		}
		if c == nil || c.secret == "" || c.secret != secret {
			return nil, "bad client credentials"
		}
		return c, ""
	}
	if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return nil, "missing client authentication"
	}
	raw := []byte(r.PostForm.Get("client_assertion"))
	msg, err := jws.Parse(raw)
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, "malformed assertion"
	}
	kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	c := s.clients[kid]
	if c == nil || c.pub == nil {
		return nil, "unknown key"
	}
	tok, err := jwt.Parse(raw, jwt.WithKey(jwa.RS256(), c.pub), jwt.WithValidate(false))
	if err != nil {
		return nil, "bad assertion signature"
	}
	iss, _ := tok.Issuer()
	sub, _ := tok.Subject()
	aud, _ := tok.Audience()
	iat, _ := tok.IssuedAt()
	exp, _ := tok.Expiration()
	now := s.now()
	switch {
	case iss != c.clientID || sub != c.clientID:
		return nil, "assertion iss and sub must be the client ID"
	case !slices.Contains(aud, s.Issuer):
		return nil, "assertion aud must contain the issuer"
	case iat.IsZero() || now.Sub(iat) > time.Hour || iat.After(now.Add(time.Minute)):
		return nil, "assertion iat out of range"
	case !now.Before(exp):
		return nil, "assertion expired"
	}
	return c, ""
}

func writeErr(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func randomID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

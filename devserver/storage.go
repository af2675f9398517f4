package devserver

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ZITADEL scope and claim names.
const (
	projectAudScopePrefix = "urn:zitadel:iam:org:project:id:"
	projectAudScopeSuffix = ":aud"
	claimRoles            = "urn:zitadel:iam:org:project:roles"
	claimOrgID            = "urn:zitadel:iam:user:resourceowner:id"
	claimOrgName          = "urn:zitadel:iam:user:resourceowner:name"
	claimOrgDomain        = "urn:zitadel:iam:user:resourceowner:primary_domain"
)

// ProjectAudienceScope returns the scope that puts projectID in a token's
// aud: urn:zitadel:iam:org:project:id:{projectID}:aud.
func ProjectAudienceScope(projectID string) string {
	return projectAudScopePrefix + projectID + projectAudScopeSuffix
}

func projectRolesClaim(projectID string) string {
	return "urn:zitadel:iam:org:project:" + projectID + ":roles"
}

var errNotSupported = errors.New("devserver: interactive login is not supported; use the jwt-bearer or client_credentials grant")

// storage is the in-memory op.Storage.
type storage struct {
	tokenType op.AccessTokenType
	lifetime  time.Duration
	org       Org
	admin     string // the user ID that edits everything: the editor of the events it causes
	now       func() time.Time
	onRevoke  func(t *token) // called after a token is revoked, without mu held

	mu         sync.Mutex      // guards the maps and their values, and the fields below
	signing    signingKey      // signs new JWTs
	retired    []signingKey    // earlier signing keys, still published in the JWKS
	noRoleJWTs map[string]bool // projects whose JWT access tokens carry no role claims
	projects   map[string]*Project
	apps       map[string]*app  // by client ID
	users      map[string]*user // by user ID
	tokens     map[string]*token
}

var (
	_ op.Storage                  = (*storage)(nil)
	_ op.ClientCredentialsStorage = (*storage)(nil)
	_ op.JWTProfileTokenStorage   = (*storage)(nil)
)

// tokenRequest is the op.TokenRequest for client_credentials and minted tokens.
type tokenRequest struct {
	subject  string
	clientID string
	audience []string
	scopes   []string
	lifetime time.Duration
}

func (r *tokenRequest) GetSubject() string    { return r.subject }
func (r *tokenRequest) GetAudience() []string { return r.audience }
func (r *tokenRequest) GetScopes() []string   { return r.scopes }

// audienceFromScopes returns the project IDs named in project audience scopes.
func audienceFromScopes(scopes []string) []string {
	var aud []string
	for _, s := range scopes {
		if id, ok := projectFromScope(s); ok && !slices.Contains(aud, id) {
			aud = append(aud, id)
		}
	}
	return aud
}

func projectFromScope(s string) (string, bool) {
	if !strings.HasPrefix(s, projectAudScopePrefix) || !strings.HasSuffix(s, projectAudScopeSuffix) {
		return "", false
	}
	id := s[len(projectAudScopePrefix) : len(s)-len(projectAudScopeSuffix)]
	return id, id != "" && !strings.Contains(id, ":")
}

// validateScopes keeps the scopes ZITADEL knows, and refuses audience scopes
// of projects that do not exist.
func (s *storage) validateScopes(userID string, scopes []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown user")
	}
	if u.locked {
		return nil, oidc.ErrInvalidGrant().WithDescription("user is locked")
	}
	var kept []string
	for _, sc := range scopes {
		switch {
		case sc == oidc.ScopeOpenID, sc == oidc.ScopeProfile, sc == oidc.ScopeEmail,
			sc == "urn:zitadel:iam:org:projects:roles", sc == "urn:zitadel:iam:user:resourceowner",
			strings.HasPrefix(sc, "urn:zitadel:iam:org:project:role:"):
			kept = append(kept, sc)
		case strings.HasPrefix(sc, projectAudScopePrefix):
			id, ok := projectFromScope(sc)
			if !ok {
				return nil, oidc.ErrInvalidScope().WithDescription("malformed scope %q; want urn:zitadel:iam:org:project:id:{projectID}:aud", sc)
			}
			if s.projects[id] == nil {
				return nil, oidc.ErrInvalidScope().WithDescription("project %s in scope %q does not exist", id, sc)
			}
			kept = append(kept, sc)
		}
	}
	return kept, nil
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, userID string, scopes []string) ([]string, error) {
	return s.validateScopes(userID, scopes)
}

// JWTProfileTokenType chooses opaque or JWT access tokens for the jwt-bearer
// grant, and sets the request's audience to the requested projects (op uses
// it as the aud of JWT access tokens).
func (s *storage) JWTProfileTokenType(_ context.Context, req op.TokenRequest) (op.AccessTokenType, error) {
	if r, ok := req.(*oidc.JWTTokenRequest); ok {
		r.Audience = audienceFromScopes(r.Scopes)
	}
	return s.tokenType, nil
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	t := &token{id: newID(), issuedAt: s.now(), scopes: req.GetScopes()}
	lifetime := s.lifetime
	switch r := req.(type) {
	case *oidc.JWTTokenRequest:
		t.subject, t.clientID, t.audience = r.Subject, r.Subject, audienceFromScopes(r.Scopes)
	case *tokenRequest:
		t.subject, t.clientID, t.audience = r.subject, r.clientID, r.audience
		if r.lifetime > 0 {
			lifetime = r.lifetime
		}
	default:
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	t.expiry = t.issuedAt.Add(lifetime)
	s.mu.Lock()
	s.tokens[t.id] = t
	s.mu.Unlock()
	return t.id, t.expiry, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not supported")
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, oidc.ErrInvalidGrant().WithDescription("refresh tokens are not supported")
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken revokes an access token for its own client, or for an API
// application whose project or client ID is in the token's audience.
// Unknown tokens are accepted silently (RFC 7009 §2.2).
func (s *storage) RevokeToken(_ context.Context, tokenID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	t := s.tokens[tokenID]
	if t == nil {
		s.mu.Unlock()
		return nil
	}
	allowed := t.clientID == clientID || slices.Contains(t.audience, clientID)
	if a := s.apps[clientID]; a != nil && slices.Contains(t.audience, a.ProjectID) {
		allowed = true
	}
	if !allowed {
		s.mu.Unlock()
		return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
	}
	t.revoked = true
	s.mu.Unlock()
	if s.onRevoke != nil {
		s.onRevoke(t)
	}
	return nil
}

// SetIntrospectionFromToken answers for tokens that are known, unrevoked,
// unexpired, of an unlocked user, and whose audience names the calling API
// application's project or client ID. Any error makes the answer inactive.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[tokenID]
	switch {
	case t == nil || t.subject != subject:
		return errors.New("unknown token")
	case t.revoked:
		return errors.New("token revoked")
	case !s.now().Before(t.expiry):
		return errors.New("token expired")
	}
	a := s.apps[clientID]
	if a == nil {
		return errors.New("only API applications may introspect")
	}
	if !slices.Contains(t.audience, a.ProjectID) && !slices.Contains(t.audience, a.ClientID) {
		return errors.New("token audience does not include the caller's project")
	}
	u := s.users[t.subject]
	if u == nil || u.locked {
		return errors.New("user missing or locked")
	}
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(t.expiry)
	resp.IssuedAt = oidc.FromTime(t.issuedAt)
	resp.NotBefore = oidc.FromTime(t.issuedAt)
	resp.Subject = t.subject
	resp.Audience = t.audience
	resp.Issuer = op.IssuerFromContext(ctx)
	resp.JWTID = t.id
	resp.Username = u.Username
	resp.Claims = s.userClaims(u, a.ProjectID)
	return nil
}

// userClaims returns the organization claims and, when the user has roles in
// projectID, the generic and project-specific role claims. Callers hold mu.
func (s *storage) userClaims(u *user, projectIDs ...string) map[string]any {
	c := map[string]any{claimOrgID: s.org.ID, claimOrgName: s.org.Name, claimOrgDomain: s.org.Domain}
	for _, p := range projectIDs {
		roles := u.grants[p]
		if len(roles) == 0 {
			continue
		}
		m := make(map[string]any, len(roles))
		for _, r := range roles {
			m[r] = map[string]any{s.org.ID: s.org.Domain}
		}
		if _, ok := c[claimRoles]; !ok {
			c[claimRoles] = m
		}
		c[projectRolesClaim(p)] = m
	}
	return c
}

// GetPrivateClaimsFromScopes adds ZITADEL's claims to JWT access tokens.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, scopes []string) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return nil, nil
	}
	projects := slices.DeleteFunc(audienceFromScopes(scopes), func(p string) bool { return s.noRoleJWTs[p] })
	return s.userClaims(u, projects...), nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, u := s.tokens[tokenID], s.users[subject]
	if t == nil || u == nil || t.revoked || !s.now().Before(t.expiry) {
		return errors.New("invalid token")
	}
	info.Subject = u.UserID
	info.PreferredUsername = u.Username
	return nil
}

// GetKeyByIDAndClientID finds the public key of an application or service
// user, which op uses to check client assertions and jwt-bearer grants.
func (s *storage) GetKeyByIDAndClientID(_ context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[clientID]; a != nil && a.keyID == keyID && a.pubKey != nil {
		return &jose.JSONWebKey{KeyID: keyID, Algorithm: string(jose.RS256), Use: "sig", Key: a.pubKey}, nil
	}
	if u := s.users[clientID]; u != nil && u.keyID == keyID && !u.locked {
		return &jose.JSONWebKey{KeyID: keyID, Algorithm: string(jose.RS256), Use: "sig", Key: u.pubKey}, nil
	}
	return nil, fmt.Errorf("no key %q for client %q", keyID, clientID)
}

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[clientID]; a != nil {
		method := oidc.AuthMethodPrivateKeyJWT
		if a.Secret != "" {
			method = oidc.AuthMethodBasic
		}
		return &client{id: clientID, authMethod: method, tokenType: s.tokenType}, nil
	}
	if u := s.userByIDOrName(clientID); u != nil {
		return &client{id: u.UserID, authMethod: oidc.AuthMethodBasic, tokenType: s.tokenType,
			grantTypes: []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeBearer}}, nil
	}
	return nil, fmt.Errorf("unknown client %q", clientID)
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[clientID]; a != nil && a.Secret != "" && equal(a.Secret, secret) {
		return nil
	}
	if u := s.userByIDOrName(clientID); u != nil && !u.locked && equal(u.Secret, secret) {
		return nil
	}
	return errors.New("invalid client credentials")
}

func (s *storage) ClientCredentials(ctx context.Context, clientID, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, clientID, secret); err != nil {
		return nil, err
	}
	s.mu.Lock()
	u := s.userByIDOrName(clientID)
	s.mu.Unlock()
	if u == nil {
		return nil, errors.New("client_credentials is for service users")
	}
	return &client{id: u.UserID, authMethod: oidc.AuthMethodBasic, tokenType: s.tokenType,
		grantTypes: []oidc.GrantType{oidc.GrantTypeClientCredentials}}, nil
}

func (s *storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	s.mu.Lock()
	u := s.userByIDOrName(clientID)
	s.mu.Unlock()
	if u == nil {
		return nil, oidc.ErrInvalidClient()
	}
	kept, err := s.validateScopes(u.UserID, scopes)
	if err != nil {
		return nil, err
	}
	return &tokenRequest{subject: u.UserID, clientID: u.UserID, audience: audienceFromScopes(kept), scopes: kept}, nil
}

// userByIDOrName looks a service user up by ID or username. Callers hold mu.
func (s *storage) userByIDOrName(id string) *user {
	if u := s.users[id]; u != nil {
		return u
	}
	for _, u := range s.users {
		if u.Username == id {
			return u
		}
	}
	return nil
}

func equal(a, b string) bool { return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Keys for signing JWT access tokens.

type signingKey struct {
	key *rsa.PrivateKey
	id  string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []op.Key{publicKey{s.signing}}
	for _, k := range s.retired {
		keys = append(keys, publicKey{k})
	}
	return keys, nil
}

func (s *storage) Health(context.Context) error { return nil }

// Interactive login (authorization code flow) is out of scope.

func (s *storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errNotSupported
}
func (s *storage) SaveAuthCode(context.Context, string, string) error { return errNotSupported }
func (s *storage) DeleteAuthRequest(context.Context, string) error    { return errNotSupported }

// client is an op.Client: an API application or a service user.
type client struct {
	id         string
	authMethod oidc.AuthMethod
	tokenType  op.AccessTokenType
	grantTypes []oidc.GrantType
}

func (c *client) GetID() string                        { return c.id }
func (c *client) RedirectURIs() []string               { return nil }
func (c *client) PostLogoutRedirectURIs() []string     { return nil }
func (c *client) ApplicationType() op.ApplicationType  { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod          { return c.authMethod }
func (c *client) ResponseTypes() []oidc.ResponseType   { return nil }
func (c *client) GrantTypes() []oidc.GrantType         { return c.grantTypes }
func (c *client) LoginURL(string) string               { return "" }
func (c *client) AccessTokenType() op.AccessTokenType  { return c.tokenType }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return true }
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

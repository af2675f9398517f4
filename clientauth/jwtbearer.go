package clientauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/tokenguard/tokenguard/internal/loopback"
)

// GrantTypeJWTBearer is the grant_type of the JWT bearer authorization grant
// (RFC 7523 §2.1).
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// ProjectAudienceScope returns the ZITADEL scope that puts projectID in an
// access token's aud: urn:zitadel:iam:org:project:id:{projectID}:aud. An API
// that checks its audience refuses tokens requested without it.
func ProjectAudienceScope(projectID string) string {
	return "urn:zitadel:iam:org:project:id:" + projectID + ":aud"
}

// DefaultExpiryDelta is how long before its expiry a cached access token is
// replaced.
const DefaultExpiryDelta = time.Minute

// JWTBearer gets access tokens for a service user: it signs a JWT with the
// user's key (iss = sub = user ID, aud = issuer, kid = key ID) and trades it
// at the token endpoint with the jwt-bearer grant, asking for scope openid,
// the audience scope of each project, and Scopes.
//
// A JWTBearer must not be copied or modified after first use. Its methods
// are safe for concurrent use.
type JWTBearer struct {
	// Key is the service user's key file ("serviceaccount"). Required.
	Key *Key
	// Issuer is the authorization server's issuer, exactly as discovered.
	// Required: it is the assertion's audience.
	Issuer string
	// TokenURL is the token endpoint. Default: discovered from Issuer.
	TokenURL string
	// ProjectIDs are the projects (APIs) the token is for; each adds
	// urn:zitadel:iam:org:project:id:{id}:aud to the scope.
	ProjectIDs []string
	// Scopes are added to openid and the project audience scopes.
	Scopes []string
	// HTTPClient makes the token requests. Default: a client on
	// http.DefaultTransport with a 30 s timeout. Redirects are never
	// followed, whatever its CheckRedirect: a token endpoint that redirects
	// gets an error.
	HTTPClient *http.Client
	// ExpiryDelta is how long before expiry [JWTBearer.TokenSource] gets
	// a new token. Default: [DefaultExpiryDelta] (1 minute).
	ExpiryDelta time.Duration

	mu         sync.Mutex    // guards discovered and token
	discovered string        // the token endpoint, once discovered
	token      *oauth2.Token // the token every TokenSource shares
	group      singleflight.Group
}

// Scope returns the scope requested: openid, the project audience scopes,
// then Scopes.
func (j *JWTBearer) Scope() string {
	s := []string{"openid"}
	for _, p := range j.ProjectIDs {
		s = append(s, ProjectAudienceScope(p))
	}
	return strings.Join(append(s, j.Scopes...), " ")
}

// httpClient returns the client of the token and discovery requests: a
// shallow copy of HTTPClient (or of the default) that follows no redirect.
// The token request carries the signed assertion, and net/http sends a
// request's body again to wherever a 307 or 308 points; so the 3xx itself
// comes back, and is refused. HTTPClient itself is not changed.
func (j *JWTBearer) httpClient() *http.Client {
	cp := http.Client{Timeout: 30 * time.Second}
	if j.HTTPClient != nil {
		cp = *j.HTTPClient
	}
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// Token signs a new assertion (a fresh one, with its own jti, for every
// token request) and trades it for an access token, without caching: use
// [JWTBearer.TokenSource] or [JWTBearer.Client] to reuse tokens. Token endpoint errors are [*oauth2.RetrieveError] values carrying
// the server's error and error_description.
func (j *JWTBearer) Token(ctx context.Context) (*oauth2.Token, error) {
	if j.Key == nil {
		return nil, errors.New("clientauth: JWTBearer.Key is required")
	}
	if j.Key.Type != TypeServiceAccount {
		return nil, fmt.Errorf("clientauth: key %s has type %q; the jwt-bearer grant needs a service user key (type \"serviceaccount\")", j.Key.KeyID, j.Key.Type)
	}
	if j.Issuer == "" {
		return nil, errors.New("clientauth: JWTBearer.Issuer is required")
	}
	tokenURL, err := j.tokenURL(ctx)
	if err != nil {
		return nil, err
	}
	pk, err := j.Key.PrivateKeyJWT(j.Issuer, WithFreshAssertions())
	if err != nil {
		return nil, err
	}
	assertion, err := pk.Assertion()
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {GrantTypeJWTBearer}, "assertion": {assertion}, "scope": {j.Scope()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("clientauth: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := j.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("clientauth: token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("clientauth: reading token response: %w", err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, fmt.Errorf("clientauth: the token endpoint %s answered %s, a redirect to %q: redirects are not followed, since the token request carries the service user's signed assertion; set JWTBearer.TokenURL (or the issuer) to where the server really answers",
			tokenURL, resp.Status, resp.Header.Get("Location"))
	}
	if resp.StatusCode != http.StatusOK {
		rerr := &oauth2.RetrieveError{Response: resp, Body: body}
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &e) == nil {
			rerr.ErrorCode, rerr.ErrorDescription = e.Error, e.Description
		}
		return nil, rerr
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("clientauth: token response has content type %q, want application/json", resp.Header.Get("Content-Type"))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
		IDToken     string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("clientauth: decoding token response: %w", err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("clientauth: token response has no access_token")
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, ExpiresIn: tr.ExpiresIn}
	if tr.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	extra := map[string]any{"scope": tr.Scope}
	if tr.IDToken != "" {
		extra["id_token"] = tr.IDToken
	}
	return tok.WithExtra(extra), nil
}

// tokenURL returns TokenURL, or the token endpoint discovered from Issuer;
// discovery runs once and is remembered.
func (j *JWTBearer) tokenURL(ctx context.Context) (string, error) {
	if j.TokenURL != "" {
		return j.TokenURL, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.discovered != "" {
		return j.discovered, nil
	}
	doc, err := client.Discover(ctx, j.Issuer, j.httpClient())
	if err != nil {
		return "", fmt.Errorf("clientauth: discovering the token endpoint of %s: %w", j.Issuer, err)
	}
	if doc.TokenEndpoint == "" {
		return "", fmt.Errorf("clientauth: %s has no token_endpoint in its discovery document", j.Issuer)
	}
	if err := checkTokenEndpoint(doc.TokenEndpoint, j.Issuer); err != nil {
		return "", err
	}
	j.discovered = doc.TokenEndpoint
	return j.discovered, nil
}

// checkTokenEndpoint refuses a discovered token endpoint that would carry
// the signed assertion, and the access token back, in clear text where the
// issuer does not: plain http on a host that is not loopback, unless the
// issuer is itself plain http on a host that is not loopback. (ZITADEL names http endpoints when it runs behind a TLS proxy
// with ExternalSecure off.) A TokenURL set by the caller is not checked.
func checkTokenEndpoint(endpoint, issuer string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("clientauth: the discovered token endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if iss, err := url.Parse(issuer); u.Scheme == "http" && !loopback.Host(u.Hostname()) && (err != nil || iss.Scheme != "http" || loopback.Host(iss.Hostname())) {
		return fmt.Errorf("clientauth: the discovery document of %s names the token endpoint %q, plain http on a host that is not loopback, and the token request carries the service user's signed assertion: have the server publish https endpoints (ZITADEL: ExternalSecure), or set JWTBearer.TokenURL", issuer, u.Redacted())
	}
	return nil
}

// TokenSource returns a source of access tokens whose token requests use
// ctx. Every source and client of one JWTBearer shares one token: it is
// reused until ExpiryDelta before it expires, and concurrent calls that need
// a new one share a single token request (so a new assertion is signed
// once per token, not once per source or per caller); a caller waits for
// it until ctx ends. It is safe for concurrent use.
func (j *JWTBearer) TokenSource(ctx context.Context) oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, tokenSourceFunc(func() (*oauth2.Token, error) { return j.sharedToken(ctx) }), j.expiryDelta())
}

func (j *JWTBearer) expiryDelta() time.Duration {
	if j.ExpiryDelta <= 0 {
		return DefaultExpiryDelta
	}
	return j.ExpiryDelta
}

// sharedToken returns a copy of the shared token while it is valid, or gets
// a new one. Every caller gets its own copy: oauth2's reuse wrapper, which
// [JWTBearer.TokenSource] and [oauth2.NewClient] put in front, writes to
// the token it is given.
func (j *JWTBearer) sharedToken(ctx context.Context) (*oauth2.Token, error) {
	if t := j.validToken(); t != nil {
		return t, nil
	}
	ch := j.group.DoChan("token", func() (any, error) {
		if t := j.validToken(); t != nil { // a request that just ended got one
			return t, nil
		}
		t, err := j.Token(ctx)
		if err != nil {
			return nil, err
		}
		j.mu.Lock()
		j.token = t
		j.mu.Unlock()
		return t, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("clientauth: waiting for a token: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		t := *r.Val.(*oauth2.Token)
		return &t, nil
	}
}

// validToken returns a copy of the shared token if it is not within
// ExpiryDelta of its expiry, else nil.
func (j *JWTBearer) validToken() *oauth2.Token {
	j.mu.Lock()
	defer j.mu.Unlock()
	if t := j.token; t != nil && (t.Expiry.IsZero() || time.Now().Before(t.Expiry.Add(-j.expiryDelta()))) {
		c := *t
		return &c
	}
	return nil
}

// Client returns an HTTP client that sends Authorization: Bearer with a
// token from [JWTBearer.TokenSource] on every request.
func (j *JWTBearer) Client(ctx context.Context) *http.Client {
	return oauth2.NewClient(ctx, j.TokenSource(ctx))
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

package introspect

import (
	"context"
	"crypto/sha256"
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

	"golang.org/x/sync/singleflight"

	"github.com/tokenguard/tokenguard/cache"
)

// ClientAuthenticator authenticates this client to the introspection endpoint
// by adding form fields or headers to each request, as
// [github.com/tokenguard/tokenguard/clientauth.PrivateKeyJWT] and
// [github.com/tokenguard/tokenguard/clientauth.ClientSecretBasic] do.
// Implementations must be safe for concurrent use.
type ClientAuthenticator interface {
	AuthenticateClient(form url.Values, header http.Header) error
}

// Client asks an RFC 7662 introspection endpoint about tokens, and by default
// caches the answers. A Client is safe for concurrent use; create one with
// [New] and share it.
type Client struct {
	endpoint string
	auth     ClientAuthenticator
	cfg      config

	cache *cache.LRU[[sha256.Size]byte, *Response] // nil when caching is off
	group singleflight.Group
	bufs  sync.Pool // *[]byte scratch space for cache keys
}

// New returns a Client for the introspection endpoint, authenticating with
// auth. The endpoint must be an absolute http or https URL; find it with
// [Discover] or set it explicitly.
func New(endpoint string, auth ClientAuthenticator, opts ...Option) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("introspect: endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if auth == nil {
		return nil, errors.New("introspect: nil ClientAuthenticator")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if !cfg.negativeSet {
		cfg.negativeTTL = min(cfg.negativeTTL, cfg.maxTTL)
	}
	switch {
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("introspect: timeout %v must be positive", cfg.timeout)
	case cfg.cacheSize < 0:
		return nil, fmt.Errorf("introspect: cache size %d must be positive", cfg.cacheSize)
	case cfg.maxTTL <= 0:
		return nil, fmt.Errorf("introspect: max TTL %v must be positive", cfg.maxTTL)
	case cfg.negativeTTL < 0 || cfg.negativeTTL > cfg.maxTTL:
		return nil, fmt.Errorf("introspect: negative TTL %v must be between 0 and the max TTL %v", cfg.negativeTTL, cfg.maxTTL)
	}
	c := &Client{endpoint: endpoint, auth: auth, cfg: cfg}
	if cfg.cacheSize > 0 {
		c.cache, err = cache.New[[sha256.Size]byte, *Response](cfg.cacheSize, cache.WithClock(cfg.now))
		if err != nil {
			return nil, fmt.Errorf("introspect: %w", err)
		}
	}
	c.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return c, nil
}

// Endpoint returns the introspection endpoint URL.
func (c *Client) Endpoint() string { return c.endpoint }

// Introspect reports what the authorization server knows about token. It
// returns the response for an active token, [ErrInactive] for an inactive
// one, and otherwise an error that matches [ErrUnavailable] or
// [ErrClientAuth] with errors.Is, or is an [*Error].
//
// With caching on (the default), an answer is reused until the cache entry
// expires, and concurrent calls for an uncached token share one request to
// the server; each caller still returns as soon as its own ctx is done.
// Errors are never cached.
func (c *Client) Introspect(ctx context.Context, token string) (*Response, error) {
	if token == "" {
		return nil, ErrInactive
	}
	if c.cache == nil {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
		return result(c.fetch(ctx, token))
	}
	key := c.key(token)
	if r, ok := c.cache.Get(key); ok {
		return result(r, nil)
	}
	return c.introspectMiss(ctx, key, token)
}

// introspectMiss asks the server through the singleflight group. It is apart
// from Introspect so that the closure's captures stay off the hit path.
func (c *Client) introspectMiss(ctx context.Context, key [sha256.Size]byte, token string) (*Response, error) {
	ch := c.group.DoChan(string(key[:]), func() (any, error) {
		// A flight that finished between our Get and DoChan has filled
		// the cache: look again so that one token costs one call.
		if r, ok := c.cache.Get(key); ok {
			return r, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
		defer cancel()
		r, err := c.fetch(ctx, token)
		if err != nil {
			return nil, err
		}
		c.store(key, r)
		return r, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect: waiting for the authorization server: %w", context.Cause(ctx))
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return result(res.Val.(*Response), nil)
	}
}

// Invalidate drops the cached answer for token, if any, so that the next
// [Client.Introspect] asks the server again.
func (c *Client) Invalidate(token string) {
	if c.cache != nil {
		c.cache.Remove(c.key(token))
	}
}

func result(r *Response, err error) (*Response, error) {
	if err != nil {
		return nil, err
	}
	if !r.Active {
		return nil, ErrInactive
	}
	return r, nil
}

// key returns SHA-256(endpoint, 0, token): tokens are never kept in memory
// longer than a request, and two endpoints never share an entry.
func (c *Client) key(token string) [sha256.Size]byte {
	bp := c.bufs.Get().(*[]byte)
	b := append(append(append((*bp)[:0], c.endpoint...), 0), token...)
	sum := sha256.Sum256(b)
	clear(b)
	if cap(b) <= 64<<10 {
		*bp = b
		c.bufs.Put(bp)
	}
	return sum
}

// store caches r: an active result until the earlier of its exp and the max
// TTL, an inactive one for the negative TTL.
func (c *Client) store(key [sha256.Size]byte, r *Response) {
	now := c.cfg.now()
	if !r.Active {
		if c.cfg.negativeTTL > 0 {
			c.cache.Add(key, r, now.Add(c.cfg.negativeTTL))
		}
		return
	}
	until := now.Add(c.cfg.maxTTL)
	if exp := r.Expiration.AsTime(); !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	c.cache.Add(key, r, until) // an exp already past stores nothing
}

// fetch makes one introspection request.
func (c *Client) fetch(ctx context.Context, token string) (*Response, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	header := make(http.Header, 4)
	if err := c.auth.AuthenticateClient(form, header); err != nil {
		return nil, fmt.Errorf("introspect: authenticating client: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, unavailable("%w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, unavailable("reading response: %w", err)
	}
	if len(body) > MaxResponseSize {
		return nil, unavailable("response body exceeds %d bytes", MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFromResponse(resp, body, c.cfg.now())
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, unavailable("response content type %q is not JSON", resp.Header.Get("Content-Type"))
	}
	r, err := Decode(body)
	if err != nil {
		return nil, unavailable("%w", err)
	}
	return r, nil
}

func errorFromResponse(resp *http.Response, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Description = truncate(eb.Error, 100), truncate(eb.Description, 500)
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

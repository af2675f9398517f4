package introspect

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/tokenguard/internal/loopback"
	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// JWKS refresh intervals for [WithLocalJWT]: the cache refreshes the key
// set in the background as the server's Cache-Control allows, but no more
// often than JWKSMinInterval and no less often than JWKSMaxInterval.
const (
	JWKSMinInterval = 5 * time.Minute
	JWKSMaxInterval = time.Hour
	// maxJWKSSize caps the key set document.
	maxJWKSSize = 1 << 20
)

// asymmetric are the signature algorithms a local verification accepts:
// never none, never HMAC (whose "key" a JWKS would publish to everyone).
var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true, "Ed25519": true,
}

// errNoKey says that a token's key is not known (yet): the token is left to
// introspection.
var errNoKey = errors.New("introspect: no key for the token in the issuer's JWKS")

// errClosed is the error of a key set whose Client was closed.
var errClosed = errors.New("introspect: client closed")

// keySet is the issuer's JWKS, fetched and refreshed by a jwk.Cache (whose
// httprc client runs goroutines: started on first use, stopped by
// [Client.Close]). A key ID that the set lacks forces a refresh, at most one
// per interval.
type keySet struct {
	issuer   string
	hc       *http.Client // no redirects, bounded by the attempt timeout
	now      func() time.Time
	interval time.Duration // least time between forced refreshes
	timeout  time.Duration // bounds a forced refresh, a wait for the first fetch, a discovery
	insecure bool          // WithInsecureAllowHTTP
	metrics  *telemetry.Metrics

	index   atomic.Pointer[keyIndex] // the keys of the last set seen
	lastErr atomic.Pointer[error]    // of the last failed background fetch, for prefetch

	mu         sync.Mutex // guards the fields below
	url        string     // jwks_uri; "" until discovered
	cache      *jwk.Cache
	stop       func() error // shuts the cache down and waits for its goroutines
	res        *httprc.ResourceBase[jwk.Set]
	attempted  chan struct{} // closed when the first fetch attempt has ended (success or failure)
	closed     bool
	starting   chan struct{} // closed when the running start ends; nil if none runs
	next       time.Time     // no discovery attempt before then
	backoff    time.Duration
	forced     time.Time      // when the last forced refresh started
	refreshing *refreshRun    // the running forced refresh; nil if none
	wg         sync.WaitGroup // refreshLater's goroutines
}

// refreshRun is one forced refresh: ok is set before done is closed.
type refreshRun struct {
	done chan struct{}
	ok   bool
}

// keyIndex holds the usable keys of one jwk.Set by key ID.
type keyIndex struct {
	set  jwk.Set
	keys map[string]verifyKey
}

// verifyKey is a key of the set, ready to verify with, or the reason it
// cannot be used.
type verifyKey struct {
	alg jwa.SignatureAlgorithm
	raw any
	bad string // why no token may be verified with it; "" if usable
}

// checkJWKSURL applies the transport rules to a JWKS URL: https, or http on
// loopback or with WithInsecureAllowHTTP.
func checkJWKSURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("introspect: JWKS URL %q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !insecure && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("introspect: JWKS URL %q uses plain http on a host that is not loopback, and whoever can change it in transit can sign tokens: use https, or WithInsecureAllowHTTP on a trusted network", u.Redacted())
	}
	return nil
}

// resource returns the JWKS resource, starting the cache on first use: after
// discovering the JWKS URL if it is not configured, one attempt at a time,
// with backoff after a failure. Until that succeeds it returns an error.
func (k *keySet) resource(ctx context.Context) (*httprc.ResourceBase[jwk.Set], error) {
	for {
		k.mu.Lock()
		switch {
		case k.closed:
			k.mu.Unlock()
			return nil, errClosed
		case k.res != nil:
			res := k.res
			k.mu.Unlock()
			return res, nil
		case k.starting != nil:
			ch := k.starting
			k.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case k.now().Before(k.next):
			k.mu.Unlock()
			return nil, errNoKey
		}
		ch := make(chan struct{})
		k.starting = ch
		u := k.url
		k.mu.Unlock()
		err := k.start(ctx, u)
		k.mu.Lock()
		k.starting = nil
		if err != nil {
			k.backoff = min(max(2*k.backoff, DeferredBackoffMin), DeferredBackoffMax)
			k.next = k.now().Add(k.backoff - time.Duration(rand.Int64N(int64(k.backoff)/4)))
		}
		k.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
	}
}

// start discovers the JWKS URL if u is empty, then starts the cache and
// registers the URL; the first fetch runs in the background.
func (k *keySet) start(ctx context.Context, u string) error {
	if u == "" {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
		doc, err := Discover(dctx, k.issuer, k.hc)
		cancel()
		if err != nil {
			return err
		}
		if doc.JwksURI == "" {
			return fmt.Errorf("introspect: discovery for issuer %q names no jwks_uri", k.issuer)
		}
		if err := checkJWKSURL(doc.JwksURI, k.insecure); err != nil {
			return err
		}
		u = doc.JwksURI
	}
	cctx, cancel := context.WithCancel(context.Background()) // ended by Close
	attempted := make(chan struct{})
	var once sync.Once
	ended := func() { once.Do(func() { close(attempted) }) }
	sink := errsink.NewFunc(func(_ context.Context, err error) { k.lastErr.Store(&err); ended() })
	c, err := jwk.NewCache(cctx, httprc.NewClient(httprc.WithWorkers(1), httprc.WithErrorSink(sink)))
	if err != nil {
		cancel()
		return fmt.Errorf("introspect: starting the JWKS cache: %w", err)
	}
	shutdown := func() error {
		defer cancel()
		sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		return c.Shutdown(sctx)
	}
	rctx, stop := context.WithTimeout(context.Background(), k.timeout)
	defer stop()
	err = c.Register(rctx, u, jwk.WithHTTPClient(k.hc), jwk.WithWaitReady(false), jwk.WithMaxFetchBodySize(maxJWKSSize),
		jwk.WithMinInterval(JWKSMinInterval), jwk.WithMaxInterval(JWKSMaxInterval))
	var res *httprc.ResourceBase[jwk.Set]
	if err == nil {
		res, err = c.LookupResource(rctx, u)
	}
	if err != nil {
		_ = shutdown()
		return fmt.Errorf("introspect: registering the JWKS %s: %w", u, err)
	}
	readyDone := make(chan struct{})
	go func() { // ends when the first fetch succeeded, or at Close
		defer close(readyDone)
		if res.Ready(cctx) == nil {
			ended()
		}
	}()
	stopAll := func() error {
		err := shutdown()
		<-readyDone
		return err
	}
	k.mu.Lock()
	if k.closed { // Close ran meanwhile
		k.mu.Unlock()
		_ = stopAll()
		return errClosed
	}
	k.url, k.cache, k.stop, k.res, k.attempted = u, c, stopAll, res, attempted
	k.mu.Unlock()
	return nil
}

// key returns the key with ID kid. A set whose first fetch attempt has not
// ended is waited for (up to the timeout); once it has, a set that could
// not be fetched is not waited for (the background fetches go on). A kid
// the set lacks forces a refresh, at most one per interval (concurrent
// callers wait for the same one). It returns errNoKey
// (or a start error) when the key cannot be had: the token is then left to
// introspection.
func (k *keySet) key(ctx context.Context, kid string) (verifyKey, error) {
	res, err := k.resource(ctx)
	if err != nil {
		return verifyKey{}, err
	}
	if vk, ok := k.lookup(res, kid); ok {
		return vk, nil
	}
	if res.Resource() == nil { // the first fetch is under way, or failed
		k.mu.Lock()
		attempted := k.attempted
		k.mu.Unlock()
		if attempted != nil {
			t := time.NewTimer(k.timeout)
			select {
			case <-attempted:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		if vk, ok := k.lookup(res, kid); ok {
			return vk, nil
		}
		if res.Resource() == nil {
			k.refreshLater() // no set yet: introspect at once, try again behind
			return verifyKey{}, errNoKey
		}
	}
	if !k.refresh(ctx) {
		return verifyKey{}, errNoKey
	}
	if vk, ok := k.lookup(res, kid); ok {
		return vk, nil
	}
	return verifyKey{}, errNoKey
}

// lookup finds kid in the resource's current set.
func (k *keySet) lookup(res *httprc.ResourceBase[jwk.Set], kid string) (verifyKey, bool) {
	set := res.Resource()
	if set == nil {
		return verifyKey{}, false
	}
	idx := k.index.Load()
	if idx == nil || idx.set != set {
		idx = newKeyIndex(set)
		k.index.Store(idx)
	}
	vk, ok := idx.keys[kid]
	return vk, ok
}

// newKeyIndex reads the keys of set once: their declared algorithm, the
// raw public key, or why one cannot be used.
func newKeyIndex(set jwk.Set) *keyIndex {
	idx := &keyIndex{set: set, keys: make(map[string]verifyKey, set.Len())}
	for i := range set.Len() {
		key, _ := set.Key(i)
		kid, ok := key.KeyID()
		if !ok || kid == "" {
			continue
		}
		var vk verifyKey
		alg, hasAlg := key.Algorithm()
		use, _ := key.KeyUsage()
		switch {
		case key.KeyType().String() == "oct":
			vk.bad = "the JWKS key is symmetric"
		case !hasAlg:
			vk.bad = "the JWKS key declares no algorithm"
		case !asymmetric[alg.String()]:
			vk.bad = fmt.Sprintf("the JWKS key's algorithm %q is not accepted", alg.String())
		case use != "" && use != "sig":
			vk.bad = fmt.Sprintf("the JWKS key is for %q, not signatures", use)
		default:
			vk.alg, _ = jwa.LookupSignatureAlgorithm(alg.String())
			if err := jwk.Export(key, &vk.raw); err != nil {
				vk.bad = "the JWKS key cannot be read"
			}
		}
		if _, dup := idx.keys[kid]; dup {
			vk = verifyKey{bad: "the JWKS has two keys with this ID"}
		}
		idx.keys[kid] = vk
	}
	return idx
}

// refresh fetches the set anew for an unknown kid, unless one was forced
// less than the interval ago; a caller that finds one running waits for it.
// It reports whether a refresh ran (or was joined) and succeeded.
func (k *keySet) refresh(ctx context.Context) bool {
	k.mu.Lock()
	if run := k.refreshing; run != nil {
		k.mu.Unlock()
		select {
		case <-run.done:
			return run.ok
		case <-ctx.Done():
			return false
		}
	}
	now := k.now()
	if k.cache == nil || (!k.forced.IsZero() && now.Sub(k.forced) < k.interval) {
		k.mu.Unlock()
		return false
	}
	k.forced = now
	run := &refreshRun{done: make(chan struct{})}
	k.refreshing = run
	c, u := k.cache, k.url
	k.mu.Unlock()
	// Detached from the caller: one who hangs up must not waste the
	// interval's refresh for everyone else.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
	_, err := c.Refresh(rctx, u)
	cancel()
	k.metrics.Refreshed(ctx, err == nil)
	run.ok = err == nil
	k.mu.Lock()
	k.refreshing = nil
	k.mu.Unlock()
	close(run.done)
	return run.ok
}

// refreshLater starts a forced refresh in the background, unless one runs
// or ran less than the interval ago; close waits for it.
func (k *keySet) refreshLater() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.cache == nil || k.refreshing != nil || (!k.forced.IsZero() && k.now().Sub(k.forced) < k.interval) {
		return
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.refresh(context.Background())
	}()
}

// prefetch starts the cache and waits, within ctx and the timeout, for the
// first fetch.
func (k *keySet) prefetch(ctx context.Context) error {
	res, err := k.resource(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	k.mu.Lock()
	attempted := k.attempted
	k.mu.Unlock()
	if attempted != nil && res.Resource() == nil {
		select {
		case <-attempted:
		case <-wctx.Done():
		}
	}
	if res.Resource() == nil {
		err := wctx.Err()
		if err == nil {
			err = errNoKey
		}
		if last := k.lastErr.Load(); last != nil {
			err = *last
		}
		return fmt.Errorf("introspect: fetching the issuer's JWKS: %w", unavailable("%w", err))
	}
	return nil
}

// close stops the cache's goroutines and waits for them; later calls find
// no keys.
func (k *keySet) close() error {
	k.mu.Lock()
	stop := k.stop
	k.closed, k.cache, k.stop, k.res = true, nil, nil, nil
	k.mu.Unlock()
	k.wg.Wait()
	if stop == nil {
		return nil
	}
	if err := stop(); err != nil {
		return fmt.Errorf("introspect: stopping the JWKS cache: %w", err)
	}
	return nil
}

package introspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tokenguard/tokenguard/internal/loopback"
	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// checkEndpoint applies the transport rules to the endpoint: a plain-http
// endpoint must be on loopback unless WithInsecureAllowHTTP.
func (cfg *config) checkEndpoint(u *url.URL) error {
	if u.Scheme == "http" && !cfg.insecureHTTP && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("introspect: endpoint %q uses plain http on a host that is not loopback, and each request carries a token and this client's credentials: use https, or WithInsecureAllowHTTP (tokenguard: Config.InsecureAllowHTTP) on a trusted network", u.Redacted())
	}
	return nil
}

// prepareTransport applies the transport rules to the options; New calls it
// after applying them. The HTTP client is replaced by a copy that does not
// follow redirects.
func (cfg *config) prepareTransport() error {
	if cfg.attemptTimeout <= 0 {
		return fmt.Errorf("introspect: attempt timeout %v must be positive", cfg.attemptTimeout)
	}
	cfg.httpClient = withoutRedirects(cfg.httpClient)
	return nil
}

// withoutRedirects returns a shallow copy of hc that never follows a
// redirect: the 3xx response itself comes back, and is refused. hc itself,
// which may be the caller's, is not changed.
func withoutRedirects(hc *http.Client) *http.Client {
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// callDirect is [Client.call] for a caller without the cache: the call is
// bounded by the Client's timeout inside the caller's own ctx, and ends
// early if the caller hangs up.
func (c *Client) callDirect(ctx context.Context, token string) (*Response, error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	return c.callFor(cctx, ctx, token)
}

// call makes one introspection for a singleflight flight. ctx is the
// flight's own, bounded by the Client's timeout and cancelled by no caller:
// when it ends, the server failed to answer in time.
func (c *Client) call(ctx context.Context, token string) (*Response, error) {
	return c.callFor(ctx, nil, token)
}

// callFor makes one introspection, guarded by the circuit breaker and the
// in-flight limit, with retries; ctx bounds it. caller, if not nil, is the
// context of the one caller that waits for it: when that is done, the
// caller gave up, and the outcome says nothing about the server. It is not
// counted by the breaker and is reported as the caller's context error,
// which does not match ErrUnavailable.
func (c *Client) callFor(ctx, caller context.Context, token string) (*Response, error) {
	ep, err := c.endpoint() // not known yet (NewDeferred): no call, nothing for the breaker
	if err != nil {
		return nil, err
	}
	probe, err := c.breaker.allow(c.cfg.now())
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil { // the in-flight limit: not the server's answer
		c.breaker.release(probe)
		return nil, gaveUp(caller, err)
	}
	ctx, done := c.metrics.StartIntrospection(ctx, ep.host)
	r, err := c.fetchWithRetries(ctx, token)
	if err != nil && caller != nil && caller.Err() != nil {
		c.breaker.release(probe)
		err = gaveUp(caller, err)
	} else {
		c.breaker.record(probe, err, c.cfg.now())
	}
	done(resultOf(r, err))
	return r, err
}

// gaveUp returns err, or the caller's context error if the caller is gone.
func gaveUp(caller context.Context, err error) error {
	if caller == nil || caller.Err() == nil {
		return err
	}
	if cause := context.Cause(caller); cause != caller.Err() {
		return fmt.Errorf("introspect: the caller stopped waiting: %w: %w", caller.Err(), cause)
	}
	return fmt.Errorf("introspect: the caller stopped waiting: %w", caller.Err())
}

// acquire takes an in-flight slot, waiting up to the in-flight wait for one.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(c.cfg.flightWait)
	defer t.Stop()
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-t.C:
		return &UnavailableError{Reason: fmt.Sprintf("%d introspections already in flight", cap(c.sem)), RetryAfter: time.Second}
	case <-ctx.Done():
		return unavailable("waiting for an in-flight slot: %w", ctx.Err())
	}
}

func resultOf(r *Response, err error) telemetry.Result {
	switch {
	case err == nil && r.Active:
		return telemetry.Active
	case err == nil:
		return telemetry.Inactive
	case errors.Is(err, ErrClientAuth):
		return telemetry.ClientAuthRejected
	case errors.Is(err, ErrUnavailable):
		return telemetry.ServerUnavailable
	}
	return telemetry.Failed
}

// fetchWithRetries retries network errors, 5xx answers and attempts that
// ran out of their own time, with exponential backoff and full jitter,
// while the deadline leaves time for the wait. It is called holding an
// in-flight slot; each attempt gives its slot back when it ends, and a
// retry waits for one again, so that no slot is held during a backoff.
func (c *Client) fetchWithRetries(ctx context.Context, token string) (*Response, error) {
	for attempt := 0; ; attempt++ {
		r, retry, err := c.attempt(ctx, token)
		if err == nil || attempt >= c.cfg.retries || !retry || ctx.Err() != nil {
			return r, err
		}
		wait := rand.N(maxBackoff(c.cfg.backoff, attempt) + 1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return r, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, err
		}
		if c.acquire(ctx) != nil {
			return r, err // the server's failure says more than the wait for a slot
		}
	}
}

// attempt makes one request, bounded by the attempt timeout inside ctx, and
// then gives back the in-flight slot that its caller took. It reports
// whether the failure is worth retrying.
func (c *Client) attempt(ctx context.Context, token string) (_ *Response, retry bool, _ error) {
	defer func() { <-c.sem }()
	actx, cancel := context.WithTimeout(ctx, c.cfg.attemptTimeout)
	defer cancel()
	r, err := c.fetch(actx, token)
	var te *transportError
	if err != nil && actx.Err() != nil && ctx.Err() == nil && errors.As(err, &te) {
		// The attempt's own deadline, not the call's: a hung server,
		// worth asking again on a new connection.
		return nil, true, &transportError{fmt.Errorf("no answer within the attempt timeout (%v): %w", c.cfg.attemptTimeout, te.err)}
	}
	return r, retryable(err), err
}

// maxBackoff is the longest wait before the retry after attempt: base
// doubled for each attempt, capped at a second. The doubling stops at the
// cap, so that no attempt number can overflow it; a base that is not
// positive means no wait.
func maxBackoff(base time.Duration, attempt int) time.Duration {
	const ceiling = time.Second
	if base <= 0 {
		return 0
	}
	d := min(base, ceiling)
	for ; attempt > 0 && d < ceiling; attempt-- {
		d <<= 1
	}
	return min(d, ceiling)
}

// retryable reports network errors and 5xx answers; never 4xx, timeouts of
// the call itself, or answers that could not be decoded.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500
	}
	var te *transportError
	return errors.As(err, &te) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// transportError is a failure to exchange the request and response: the
// kind worth retrying.
type transportError struct{ err error }

func (e *transportError) Error() string {
	return "introspect: authorization server unavailable: " + e.err.Error()
}
func (e *transportError) Unwrap() error        { return e.err }
func (e *transportError) Is(target error) bool { return target == ErrUnavailable }

// fetch makes one introspection request, and at once one more with new
// credentials when the server refused these and the authenticator asks for
// it (see [RejectionHandler]).
func (c *Client) fetch(ctx context.Context, token string) (*Response, error) {
	for retried := false; ; retried = true {
		form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
		header := make(http.Header, 4)
		if err := c.auth.AuthenticateClient(form, header); err != nil {
			return nil, fmt.Errorf("introspect: authenticating client: %w", err)
		}
		r, err := c.post(ctx, token, form, header)
		if retried || !retryWithNewCredentials(c.auth, err, form, header) {
			return r, err
		}
	}
}

// post sends one introspection request with the credentials in form and
// header.
func (c *Client) post(ctx context.Context, token string, form url.Values, header http.Header) (*Response, error) {
	endpoint := c.ep.Load().url // callFor made sure it is known
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(encodeForm(form)))
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	req.Header = header
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, &transportError{err}
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return nil, &transportError{fmt.Errorf("reading response: %w", err)}
	}
	if len(body) > MaxResponseSize {
		return nil, unavailable("response body exceeds %d bytes", MaxResponseSize)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 { // never followed: see withoutRedirects
		return nil, newRedirectError(endpoint, resp, token)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFromResponse(resp, body, c.cfg.now(), token)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" { // what servers send, without parsing
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, unavailable("response content type %q is not JSON", ct)
		}
	}
	r := new(Response)
	if err := r.decode(body, false); err != nil { // body is ours: the Response keeps it
		return nil, unavailable("introspect: decoding response: %w", err)
	}
	return r, nil
}

// readBody reads at most MaxResponseSize+1 bytes of resp's body, in one
// allocation when the server said how long it is.
func readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, MaxResponseSize+1)
	if n := resp.ContentLength; n >= 0 && n <= MaxResponseSize {
		buf := make([]byte, n+1) // one byte more, to see a body longer than announced
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, err
		}
		switch m, err := io.ReadFull(r, buf[n:]); {
		case m == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
			return buf[:n], nil
		case err != nil && m == 0:
			return nil, err
		}
		extra, err := io.ReadAll(r) // longer than announced: net/http refuses that, a custom transport may not
		return append(buf, extra...), err
	}
	b, err := io.ReadAll(r)
	if cap(b) > len(b)+len(b)/8+512 { // a cached Response keeps the buffer: not twice its size
		b = bytes.Clone(b)
	}
	return b, err
}

// errorFromResponse reads an error answer. Its text comes from the server:
// the token is cut out of it, so that no log or error message can carry it.
func errorFromResponse(resp *http.Response, body []byte, now time.Time, token string) *Error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &eb) == nil {
		e.Code = truncate(strings.ReplaceAll(eb.Error, token, "[token]"), 100)
		e.Description = truncate(strings.ReplaceAll(eb.Description, token, "[token]"), 500)
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RedirectError is an [ErrUnavailable] for an endpoint that answered with a
// redirect (any 3xx status). Introspection and discovery never follow
// redirects: the request would carry the token and this client's
// credentials to whatever host the Location header names. It is a
// configuration problem, not an outage: configure the final URL.
type RedirectError struct {
	URL        string // the URL asked: the configured endpoint or the discovery URL
	StatusCode int
	Location   string // where the redirect pointed, without its query; "" if nowhere
}

// Error says where the redirect pointed and what to do about it.
func (e *RedirectError) Error() string {
	to := e.Location
	if to == "" {
		to = "nowhere (no Location header)"
	}
	return fmt.Sprintf("introspect: %s answered %d %s, a redirect to %s; tokenguard does not follow redirects: configure the final URL (a configuration problem)",
		e.URL, e.StatusCode, http.StatusText(e.StatusCode), to)
}

// Is makes errors.Is(err, ErrUnavailable) true: requests fail with 503
// until the configuration is fixed.
func (e *RedirectError) Is(target error) bool { return target == ErrUnavailable }

// newRedirectError describes a redirect answered to a request for asked.
// The Location comes from the server: its query, fragment and user info are
// dropped and the token, if any, is cut out of it.
func newRedirectError(asked string, resp *http.Response, token string) *RedirectError {
	e := &RedirectError{URL: asked, StatusCode: resp.StatusCode}
	if loc, err := resp.Location(); err == nil {
		loc.RawQuery, loc.ForceQuery, loc.Fragment, loc.RawFragment, loc.User = "", false, "", "", nil
		s := loc.String()
		if token != "" {
			s = strings.ReplaceAll(strings.ReplaceAll(s, token, "[token]"), url.PathEscape(token), "[token]")
		}
		e.Location = truncate(s, 200)
	}
	return e
}

package introspect

import (
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

	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// call makes one introspection, guarded by the circuit breaker and the
// in-flight limit, with retries.
func (c *Client) call(ctx context.Context, token string) (*Response, error) {
	if err := c.breaker.allow(c.cfg.now()); err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	default:
		t := time.NewTimer(c.cfg.flightWait)
		select {
		case c.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, &UnavailableError{Reason: fmt.Sprintf("%d introspections already in flight", cap(c.sem)), RetryAfter: time.Second}
		case <-ctx.Done():
			t.Stop()
			return nil, unavailable("waiting for an in-flight slot: %w", ctx.Err())
		}
	}
	defer func() { <-c.sem }()
	ctx, done := c.metrics.StartIntrospection(ctx, c.server)
	r, err := c.fetchWithRetries(ctx, token)
	c.breaker.record(err, c.cfg.now())
	done(resultOf(r, err))
	return r, err
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

// fetchWithRetries retries network errors and 5xx answers with exponential
// backoff and full jitter, while the deadline leaves time for the wait.
func (c *Client) fetchWithRetries(ctx context.Context, token string) (*Response, error) {
	for attempt := 0; ; attempt++ {
		r, err := c.fetch(ctx, token)
		if err == nil || attempt >= c.cfg.retries || !retryable(err) || ctx.Err() != nil {
			return r, err
		}
		wait := rand.N(min(c.cfg.backoff<<attempt, time.Second) + 1)
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
	}
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
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, &transportError{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, &transportError{fmt.Errorf("reading response: %w", err)}
	}
	if len(body) > MaxResponseSize {
		return nil, unavailable("response body exceeds %d bytes", MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errorFromResponse(resp, body, c.cfg.now(), token)
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

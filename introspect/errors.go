package introspect

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

var (
	// ErrInactive means the authorization server reported the token as not
	// active: expired, revoked, unknown, or not issued for this client.
	ErrInactive = errors.New("introspect: token is not active")

	// ErrUnavailable means no answer could be had from the authorization
	// server: a network error, a timeout, a 5xx or 429 status, a redirect
	// (never followed: see [RedirectError]), an endpoint not resolved yet
	// ([ErrNotReady]), or a body that is not a valid introspection
	// response. Retrying later may help.
	ErrUnavailable = errors.New("introspect: authorization server unavailable")

	// ErrClientAuth means the authorization server refused to authenticate
	// this client (401, or error invalid_client or unauthorized_client): a
	// configuration error, such as a wrong or deleted key, that retrying
	// does not fix.
	ErrClientAuth = errors.New("introspect: client authentication rejected")
)

// Error is an error response from the introspection endpoint (RFC 6749 §5.2
// body, any non-200 status). errors.Is reports it as [ErrUnavailable] for a
// 5xx or 429 status and as [ErrClientAuth] for a refused client.
type Error struct {
	StatusCode  int
	Code        string        // "error" of the body, if any
	Description string        // "error_description" of the body, if any
	RetryAfter  time.Duration // from a Retry-After header; 0 if none
}

// Error gives the status, the error code and the server's description.
func (e *Error) Error() string {
	msg := "introspect: " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += ": " + strconv.Quote(e.Description)
	}
	return msg
}

// Is makes errors.Is(err, ErrUnavailable) and errors.Is(err, ErrClientAuth)
// classify the response.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
	case ErrClientAuth:
		return e.StatusCode == http.StatusUnauthorized || e.Code == "invalid_client" || e.Code == "unauthorized_client"
	}
	return false
}

// UnavailableError is an [ErrUnavailable] that knows when to try again: the
// circuit breaker is open, or the in-flight limit was reached.
type UnavailableError struct {
	Reason     string
	RetryAfter time.Duration
	Err        error // what it wraps, if anything, such as ErrNotReady
}

// Error gives the reason.
func (e *UnavailableError) Error() string {
	return "introspect: authorization server unavailable: " + e.Reason
}

// Unwrap returns Err.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// RetryAfter returns how long the server (or the client's circuit breaker)
// asked callers to wait, or 0 when err says nothing about it.
func RetryAfter(err error) time.Duration {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue.RetryAfter
	}
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// unavailable wraps cause so that it matches ErrUnavailable.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnavailable}, args...)...)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return min(time.Duration(s)*time.Second, time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), time.Hour)
	}
	return 0
}

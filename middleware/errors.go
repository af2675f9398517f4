package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors that [Middleware.Authenticate] and [Middleware.Check] return, and
// that end a [Middleware.Watch] context, wrapped in an [*Error]. Branch on
// them with errors.Is. ErrRevoked ends a watched request whose cached
// decision was invalidated; ErrPolicy wraps a [WithValidator] refusal.
var (
	ErrNoToken       = errors.New("middleware: no bearer token")
	ErrMalformed     = errors.New("middleware: malformed request")
	ErrInactive      = errors.New("middleware: token is not active")
	ErrExpired       = errors.New("middleware: token has expired")
	ErrRevoked       = errors.New("middleware: token's decision was invalidated")
	ErrPolicy        = errors.New("middleware: token refused by this API's validator")
	ErrNotYetValid   = errors.New("middleware: token is not valid yet")
	ErrAudience      = errors.New("middleware: token audience does not match")
	ErrForbidden     = errors.New("middleware: token lacks a required role or scope")
	ErrUnavailable   = errors.New("middleware: authorization server unavailable")
	ErrMisconfigured = errors.New("middleware: introspection failed: configuration error")
)

// RFC 6750 §3.1 error codes.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
)

// DefaultRetryAfter is the Retry-After sent with a 503 when the authorization
// server gave none.
const DefaultRetryAfter = 5 * time.Second

// Error is a refused request: what to tell the client, and why. Every
// refusal of [Middleware.Authenticate] and [Middleware.Check] is an *Error;
// its Description is written for the client and never contains the token or
// upstream details.
type Error struct {
	StatusCode  int           // 400, 401, 403, 500 or 503
	Code        string        // RFC 6750 error code; empty for a missing token and for 500/503
	Description string        // safe to show the client
	Scope       string        // with insufficient_scope: the scopes that would do
	RetryAfter  time.Duration // with 503
	Err         error         // the cause: one of the Err* sentinels, possibly wrapping more
}

// Error is the cause's message; clients see Description instead.
func (e *Error) Error() string {
	if e == nil || e.Err == nil {
		return "middleware: request refused"
	}
	return e.Err.Error()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// ErrorHandler writes the response for a refused request. err is an
// [*Error] for requests refused by [Middleware.Authenticate].
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// DefaultErrorHandler writes RFC 6750 responses: a WWW-Authenticate: Bearer
// challenge with realm, error, error_description and scope for 400, 401 and
// 403; Retry-After with 503; and a small JSON body
// {"error":…,"error_description":…} in every case. Control characters and
// non-ASCII are dropped from the challenge so that no header can be
// injected; the realm's quotes and backslashes are escaped, and in the other
// parameters, whose grammar allows neither, double quotes become single ones
// and backslashes slashes. The JSON body keeps the description as it is. An
// error that is not an [*Error] gets a 500.
func DefaultErrorHandler(realm string) ErrorHandler { return defaultErrorHandler(realm, "") }

// defaultErrorHandler is DefaultErrorHandler whose 401 challenges also carry
// resource_metadata (RFC 9728 §5.1) when metadataURL is set.
func defaultErrorHandler(realm, metadataURL string) ErrorHandler {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{StatusCode: http.StatusInternalServerError, Description: "internal error"}
		}
		h := w.Header()
		switch e.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			h.Set("WWW-Authenticate", challenge(realm, metadataURL, e))
		case http.StatusServiceUnavailable:
			ra := e.RetryAfter
			if ra <= 0 {
				ra = DefaultRetryAfter
			}
			h.Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		}
		code := e.Code
		switch {
		case code != "":
		case e.StatusCode == http.StatusUnauthorized:
			code = "unauthorized"
		case e.StatusCode == http.StatusServiceUnavailable:
			code = "temporarily_unavailable"
		default:
			code = "server_error"
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(e.StatusCode)
		body, _ := json.Marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description,omitempty"`
		}{code, e.Description})
		_, _ = w.Write(append(body, '\n'))
	}
}

// challenge builds the WWW-Authenticate value (RFC 6750 §3), with the
// resource_metadata parameter of RFC 9728 §5.1 on 401s when metadataURL is
// set.
func challenge(realm, metadataURL string, e *Error) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(k, v string, clean func(*strings.Builder, string)) {
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		clean(&b, v)
		b.WriteByte('"')
		sep = ", "
	}
	if realm != "" {
		param("realm", realm, quote)
	}
	if metadataURL != "" && e.StatusCode == http.StatusUnauthorized {
		param("resource_metadata", metadataURL, strict) // New checked it: nothing to replace
	}
	if e.Code != "" {
		param("error", e.Code, strict)
		if e.Description != "" {
			param("error_description", e.Description, strict)
		}
		if e.Scope != "" {
			param("scope", e.Scope, strict)
		}
	}
	return b.String()
}

// quote writes a quoted-string's content (RFC 9110 §5.6.4), for realm:
// backslash and double quote are escaped, control characters and non-ASCII
// dropped.
func quote(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
		default:
			b.WriteByte(c)
		}
	}
}

// strict writes s within RFC 6750 §3's grammar for error, error_description
// and scope (%x20-21 / %x23-5B / %x5D-7E), which has no escapes: a double
// quote becomes a single one and a backslash a slash, so that strict parsers
// accept the header; control characters and non-ASCII are dropped. The JSON
// body keeps the full text.
func strict(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteByte('\'')
		case c == '\\':
			b.WriteByte('/')
		case c < 0x20 || c > 0x7e:
		default:
			b.WriteByte(c)
		}
	}
}

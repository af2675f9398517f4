package middleware

import (
	"errors"
	"fmt"
	"net/http"
)

// TokenSource is one place where an HTTP request may carry its bearer token:
// [FromAuthorization] (the default), [FromCookie], [FromQuery], or your own
// with [TokenSourceFunc]. [WithTokenSource] says which the middleware reads.
// The zero TokenSource finds nothing.
type TokenSource struct {
	find  func(r *http.Request) (string, *Error)
	query bool // the token travels in the URL: answers get Cache-Control: private
}

// FromAuthorization finds the token in the Authorization header, with the
// Bearer scheme (RFC 6750 §2.1): the default source. Two headers, an
// oversized one or Bearer without a token is a 400; another scheme is no
// token.
func FromAuthorization() TokenSource { return TokenSource{find: fromAuthorization} }

func fromAuthorization(r *http.Request) (string, *Error) {
	token, err := parseBearer(r.Header["Authorization"])
	if err != nil {
		if err == ErrNoToken {
			return "", nil
		}
		return "", badRequest(err.(malformedError))
	}
	return token, nil
}

// FromCookie finds the token in the cookie name, for browser clients whose
// session holds an access token. An empty cookie is no token; two cookies of
// that name, or one over [MaxTokenSize], are a 400. Cookies are sent with
// every request to your site, cross-site ones included unless SameSite says
// otherwise: protect state-changing routes from CSRF as you would for any
// cookie-authenticated API.
func FromCookie(name string) TokenSource {
	tooMany := malformedError("more than one " + name + " cookie")
	return TokenSource{find: func(r *http.Request) (string, *Error) {
		if len(r.Header["Cookie"]) == 0 {
			return "", nil
		}
		cs := r.CookiesNamed(name)
		switch {
		case len(cs) == 0:
			return "", nil
		case len(cs) > 1:
			return "", badRequest(tooMany)
		case len(cs[0].Value) > MaxTokenSize:
			return "", badRequest(errTooLarge)
		}
		return cs[0].Value, nil
	}}
}

// FromQuery finds the token in the access_token query parameter (RFC 6750
// §2.3), for WebSocket and EventSource clients in browsers, which cannot set
// headers. It is off by default, and MUST stay off for routes whose clients
// can send a header: URLs end up in access logs, proxies, browser history and
// Referer headers, and with them the token. Turn it on for the streaming
// routes alone (a second [Middleware] on the same introspection client, with
// WithTokenSource(FromAuthorization(), FromQuery())), with short-lived
// tokens. Answers to such requests get Cache-Control: private (RFC 6750
// §2.3) through [Middleware.Require] and [Middleware.Stream]; adapters that
// use [Middleware.Authenticate] set it themselves. Two access_token
// parameters, an empty or oversized one, are a 400.
func FromQuery() TokenSource {
	return TokenSource{query: true, find: func(r *http.Request) (string, *Error) {
		if r.URL == nil || r.URL.RawQuery == "" {
			return "", nil
		}
		// Parsed whatever the raw query looks like: access%5Ftoken is the
		// same parameter, and must count as a second source too.
		vs := r.URL.Query()["access_token"]
		switch {
		case len(vs) == 0:
			return "", nil
		case len(vs) > 1:
			return "", badRequest(malformedError("more than one access_token parameter"))
		case vs[0] == "":
			return "", badRequest(malformedError("empty access_token parameter"))
		case len(vs[0]) > MaxTokenSize:
			return "", badRequest(errTooLarge)
		}
		return vs[0], nil
	}}
}

// TokenSourceFunc makes a [TokenSource] of find, e.g. for a header set by
// a proxy in front of the API. find returns "" and nil when r has no token
// there, and an error when what it holds is malformed: an [*Error] is
// answered as it is, any other error with 400 invalid_request and a generic
// description. find must be safe for concurrent use.
func TokenSourceFunc(find func(r *http.Request) (string, error)) TokenSource {
	return TokenSource{find: func(r *http.Request) (string, *Error) {
		token, err := find(r)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e != nil {
				return "", e
			}
			return "", &Error{StatusCode: http.StatusBadRequest, Code: CodeInvalidRequest,
				Description: "malformed token", Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
		}
		return token, nil
	}}
}

// tokenOf finds r's token in the configured sources: "" and nil if none
// has one, a 400 if one is malformed or more than one has a token (RFC 6750
// §2: one method per request). fromQuery reports a token from the URL.
func (m *Middleware) tokenOf(r *http.Request) (token string, fromQuery bool, _ *Error) {
	if m.cfg.sources == nil { // the hit path: the Authorization header alone
		token, err := fromAuthorization(r)
		return token, false, err
	}
	found := false
	for _, s := range m.cfg.sources {
		if s.find == nil {
			continue
		}
		t, err := s.find(r)
		switch {
		case err != nil:
			return "", false, err
		case t == "":
			continue
		case found:
			return "", false, badRequest(errTwoSources)
		}
		token, fromQuery, found = t, s.query, true
	}
	return token, fromQuery, nil
}

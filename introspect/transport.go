package introspect

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultMaxIdleConnsPerHost is how many idle connections to the
// authorization server the default HTTP client keeps: more than any
// in-flight limit needs in practice, so that a connection a burst of misses
// opened is reused rather than closed and dialled again. Connections are
// only opened for concurrent requests, which [WithMaxInFlight] bounds (64
// by default), and idle ones close after 90 s.
const DefaultMaxIdleConnsPerHost = 1024

// NewTransport returns a new transport like the one of the Client's default
// HTTP client, tuned for the one host it talks to: HTTP/2 where the server
// offers it over TLS (one connection carries every concurrent call), up to
// [DefaultMaxIdleConnsPerHost] idle HTTP/1.1 connections kept
// (http.DefaultTransport keeps 2 per host, so that under 64 concurrent
// misses the rest are closed and dialled again, with a TLS handshake each),
// HTTP/2 connections that stop answering detected by a ping within 15 s,
// proxies from the environment, and http.DefaultTransport's timeouts.
//
// Use it to build a client of your own (set TLSClientConfig for a private
// CA, then pass it with [WithHTTPClient]); a client passed with
// WithHTTPClient is used as given. Each call returns a new transport, with
// its own connections; it is safe for concurrent use.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          DefaultMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 10 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
}

// newHTTPClient returns the Client's default HTTP client: no timeout of its
// own ([WithTimeout] bounds each call) on a transport from [NewTransport].
func newHTTPClient() *http.Client { return &http.Client{Transport: NewTransport()} }

// RejectionHandler may be implemented by a [ClientAuthenticator] whose
// credentials the server may refuse for a reason a retry fixes, as
// [github.com/tokenguard/tokenguard/clientauth.PrivateKeyJWT] does for a
// reused assertion that a server refuses.
//
// When the server refuses to authenticate this client ([ErrClientAuth]),
// the Client calls ClientAuthRejected with the form and header that
// AuthenticateClient filled for the refused request. If it returns true,
// the Client retries that request once at once, with credentials from a new
// AuthenticateClient call; a refusal of the retry is returned as it is,
// without asking again. ClientAuthRejected must be safe for concurrent use.
type RejectionHandler interface {
	ClientAuthRejected(form url.Values, header http.Header) bool
}

// retryWithNewCredentials reports whether a request that failed with err,
// sent with form and header as credentials, is to be retried once with new
// credentials: the server refused them, and auth asks for a retry.
func retryWithNewCredentials(auth ClientAuthenticator, err error, form url.Values, header http.Header) bool {
	rh, ok := auth.(RejectionHandler)
	return ok && errors.Is(err, ErrClientAuth) && rh.ClientAuthRejected(form, header)
}

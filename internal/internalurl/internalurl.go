// Package internalurl sends the issuer's requests to an internal address:
// ZITADEL inside a cluster, reached by a service name while tokens and
// discovery name the public issuer, and picking the instance from the Host
// header (or x-zitadel-instance-host).
//
//	hc, err := internalurl.Client(&http.Client{Timeout: 30 * time.Second}, internalurl.Options{
//		Issuer: "https://auth.example.com",
//		URL:    "http://zitadel.zitadel.svc.cluster.local:8080",
//		AllowHTTP: true, // plain http inside the cluster
//	})
//
// # Security
//
// Only requests for the issuer's scheme and host (default port or not, in
// any case) are mapped; requests for any other host, a look-alike such as
// auth.example.com.evil.test included, pass through as they are. An https
// URL's certificate MUST verify for the issuer's host name, or for
// [Options.TLSServerName]; this package never turns verification off (a
// base transport that sets InsecureSkipVerify keeps it). A plain-http URL
// on a host that is not loopback is refused unless [Options.AllowHTTP].
package internalurl

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokenguard/tokenguard/internal/loopback"
)

// InstanceHostHeader is the header ZITADEL reads, before Host, to pick the
// instance a request is for. Mapped requests carry it, set to the issuer's
// host.
const InstanceHostHeader = "X-Zitadel-Instance-Host"

// Options say which requests go where. The zero value maps nothing.
type Options struct {
	// Issuer is the public issuer URL; requests for its scheme and host
	// are mapped. Required when URL is set.
	Issuer string
	// URL is the internal address: an absolute http or https URL with no
	// path, query or fragment. Empty: [Client] returns its base client.
	URL string
	// TLSServerName is the name an https URL's certificate is verified
	// for. Default: the issuer's host name. Set with a plain-http URL, or
	// without a URL, it is an error.
	TLSServerName string
	// AllowHTTP allows a plain-http URL on a host that is not loopback.
	AllowHTTP bool
	// Names name the settings above in error messages, so that each
	// caller's user reads the names they set. Zero fields have defaults.
	Names Names
}

// Names are what error messages call the settings of [Options], as the
// caller's user knows them (a library's Config fields, a command's flags).
type Names struct {
	// Prefix starts each message, before ": ". Default: "internalurl".
	Prefix string
	// URL names [Options.URL], e.g. "Config.InternalURL" or
	// "-internal-url". Default: "internal URL".
	URL string
	// TLSServerName names [Options.TLSServerName]. Default: "TLS server
	// name".
	TLSServerName string
	// AllowHTTP says how to allow plain http, after "or", e.g. "set
	// InsecureAllowHTTP". Default: "allow plain http".
	AllowHTTP string
	// Transport names the base client's transport. Default: "the HTTP
	// client's Transport".
	Transport string
	// Sent says what each request carries, for the plain-http refusal.
	// Default: "a token or credentials".
	Sent string
}

func (n Names) withDefaults() Names {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&n.Prefix, "internalurl")
	def(&n.URL, "internal URL")
	def(&n.TLSServerName, "TLS server name")
	def(&n.AllowHTTP, "allow plain http")
	def(&n.Transport, "the HTTP client's Transport")
	def(&n.Sent, "a token or credentials")
	return n
}

// Client returns base unchanged when o.URL is empty, and otherwise a copy of
// base (base itself is not changed) whose requests to the issuer's scheme
// and host go to o.URL instead, with Host and [InstanceHostHeader] set to
// the issuer's host as written in it (with its port, if any). An https URL
// needs base's transport to be an *http.Transport (or nil:
// http.DefaultTransport), which is cloned to verify the certificate for the
// issuer's host name or o.TLSServerName. Requests to any other host pass
// through base's transport as they are. The client keeps base's Timeout,
// Jar and CheckRedirect, and is safe for concurrent use if base is. A nil
// base is an empty http.Client.
//
// Mistakes in o are errors, found before any request, that name the
// settings as o.Names says.
func Client(base *http.Client, o Options) (*http.Client, error) {
	n := o.Names.withDefaults()
	if o.URL == "" {
		if o.TLSServerName != "" {
			return nil, fmt.Errorf("%s: %s is set without %s", n.Prefix, n.TLSServerName, n.URL)
		}
		return base, nil
	}
	pub, err := url.Parse(o.Issuer)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("%s: issuer %q is not an absolute URL", n.Prefix, o.Issuer)
	}
	in, ok := parseURL(o.URL)
	if !ok {
		shown := o.URL // a password in it is not repeated
		if u, err := url.Parse(o.URL); err == nil {
			shown = u.Redacted()
		}
		return nil, fmt.Errorf("%s: %s %q must be an absolute http or https URL with no path, query or fragment, such as http://zitadel.zitadel.svc.cluster.local:8080", n.Prefix, n.URL, shown)
	}
	if in.Scheme == "http" && !o.AllowHTTP && !loopback.Host(in.Hostname()) {
		return nil, fmt.Errorf("%s: %s %q uses plain http on a host that is not loopback, and each request carries %s: use https, or %s for a trusted network", n.Prefix, n.URL, in.Redacted(), n.Sent, n.AllowHTTP)
	}
	if base == nil {
		base = &http.Client{}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	mapped := rt // for requests to the internal address; others go through rt untouched
	switch {
	case in.Scheme == "https":
		name := o.TLSServerName
		if name == "" {
			name = pub.Hostname()
		}
		t, ok := rt.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("%s: an https %s needs %s to be nil or an *http.Transport (it is a %T), so that the server's certificate can be verified for %q", n.Prefix, n.URL, n.Transport, rt, name)
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.ServerName = name
		mapped = t
	case o.TLSServerName != "":
		return nil, fmt.Errorf("%s: %s is set but %s %q is not https", n.Prefix, n.TLSServerName, n.URL, o.URL)
	}
	cp := *base
	cp.Transport = &transport{base: rt, mapped: mapped, scheme: strings.ToLower(pub.Scheme), host: originHost(pub), header: pub.Host,
		toScheme: in.Scheme, toHost: in.Host}
	return &cp, nil
}

// parseURL parses an internal address: an absolute http or https URL with
// a host and nothing but an optional "/" after it (no user info, path,
// query or fragment). It does not check the plain-http rule.
func parseURL(s string) (*url.URL, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, false
	}
	return u, true
}

// transport sends the requests for the issuer's origin to the internal
// address. It is safe for concurrent use if the transports underneath are.
type transport struct {
	base         http.RoundTripper // for every other request, as it is
	mapped       http.RoundTripper // for the internal address: base, or its clone verifying the issuer's name
	scheme, host string            // the issuer's origin, as originHost gives it
	header       string            // the issuer's host as written in it: Host and x-zitadel-instance-host
	toScheme     string            // the internal URL's
	toHost       string
}

// RoundTrip maps req onto the internal address when it is for the issuer's
// origin. req is not changed (a RoundTripper must not change it): the
// mapped request is a clone.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || strings.ToLower(req.URL.Scheme) != t.scheme || originHost(req.URL) != t.host {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host = t.toScheme, t.toHost
	r.Host = t.header
	r.Header.Set(InstanceHostHeader, t.header)
	return t.mapped.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the transports
// underneath, as http.Client.CloseIdleConnections expects.
func (t *transport) CloseIdleConnections() {
	for _, rt := range []http.RoundTripper{t.base, t.mapped} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// originHost is u's host in lower case without the scheme's default port,
// so that https://AUTH.example.com:443 and https://auth.example.com compare
// equal.
func originHost(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch scheme := strings.ToLower(u.Scheme); {
	case port == "", scheme == "https" && port == "443", scheme == "http" && port == "80":
		return host
	}
	return host + ":" + port
}

package tokenguard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokenguard/tokenguard/internal/loopback"
)

// InstanceHostHeader is the header ZITADEL reads, before Host, to pick the
// instance a request is for. Requests to [Config.InternalURL] carry it, set
// to the issuer's host.
const InstanceHostHeader = "X-Zitadel-Instance-Host"

// internalClient returns hc unchanged when cfg.InternalURL is empty, and
// otherwise a copy of hc (hc itself is not changed) whose requests to the
// issuer's scheme and host go to cfg.InternalURL instead, with Host and
// x-zitadel-instance-host set to the issuer's host. An https InternalURL's
// certificate is verified for the issuer's host name, or for
// cfg.InternalTLSServerName; that needs hc's transport to be an
// *http.Transport (or nil), which is cloned. Requests to any other host
// pass through as they are.
func internalClient(cfg Config, hc *http.Client) (*http.Client, error) {
	if cfg.InternalURL == "" {
		if cfg.InternalTLSServerName != "" {
			return nil, errors.New("tokenguard: Config.InternalTLSServerName is set without Config.InternalURL")
		}
		return hc, nil
	}
	pub, err := url.Parse(cfg.Issuer)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("tokenguard: issuer %q is not an absolute URL", cfg.Issuer)
	}
	in, err := url.Parse(cfg.InternalURL)
	if err != nil || (in.Scheme != "http" && in.Scheme != "https") || in.Host == "" || in.User != nil || in.Opaque != "" ||
		(in.Path != "" && in.Path != "/") || in.RawQuery != "" || in.ForceQuery || in.Fragment != "" {
		return nil, fmt.Errorf("tokenguard: Config.InternalURL %q must be an absolute http or https URL with no path, query or fragment, such as http://zitadel.zitadel.svc.cluster.local:8080", cfg.InternalURL)
	}
	if in.Scheme == "http" && !cfg.InsecureAllowHTTP && !loopback.Host(in.Hostname()) {
		return nil, fmt.Errorf("tokenguard: Config.InternalURL %q uses plain http on a host that is not loopback, and each request carries a token and this API's credentials: use https, or set InsecureAllowHTTP for a trusted network", in.Redacted())
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	mapped := base // for requests to the internal address; others go through base untouched
	switch {
	case in.Scheme == "https":
		name := cfg.InternalTLSServerName
		if name == "" {
			name = pub.Hostname()
		}
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("tokenguard: an https Config.InternalURL needs Config.HTTPClient.Transport to be nil or an *http.Transport (it is a %T), so that the server's certificate can be verified for %q", base, name)
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.ServerName = name
		mapped = t
	case cfg.InternalTLSServerName != "":
		return nil, fmt.Errorf("tokenguard: Config.InternalTLSServerName is set but Config.InternalURL %q is not https", cfg.InternalURL)
	}
	cp := *hc
	cp.Transport = &internalTransport{base: base, mapped: mapped, scheme: strings.ToLower(pub.Scheme), host: originHost(pub), header: pub.Host,
		toScheme: in.Scheme, toHost: in.Host}
	return &cp, nil
}

// internalTransport sends the requests for the issuer's origin to the
// internal address. It is safe for concurrent use if base is.
type internalTransport struct {
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
func (t *internalTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || strings.ToLower(req.URL.Scheme) != t.scheme || originHost(req.URL) != t.host {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host = t.toScheme, t.toHost
	r.Host = t.header
	r.Header.Set(InstanceHostHeader, t.header)
	return t.mapped.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the transport
// underneath, as http.Client.CloseIdleConnections expects.
func (t *internalTransport) CloseIdleConnections() {
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

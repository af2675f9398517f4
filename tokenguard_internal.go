package tokenguard

import (
	"net/http"

	"github.com/tokenguard/tokenguard/internal/internalurl"
)

// InstanceHostHeader is the header ZITADEL reads, before Host, to pick the
// instance a request is for. Requests to [Config.InternalURL] carry it, set
// to the issuer's host.
const InstanceHostHeader = internalurl.InstanceHostHeader

// internalClient returns hc unchanged when cfg.InternalURL is empty, and
// otherwise a copy of hc (hc itself is not changed) whose requests to the
// issuer's scheme and host go to cfg.InternalURL instead, with Host and
// x-zitadel-instance-host set to the issuer's host. An https InternalURL's
// certificate is verified for the issuer's host name, or for
// cfg.InternalTLSServerName; that needs hc's transport to be an
// *http.Transport (or nil), which is cloned. Requests to any other host
// pass through as they are. See package internalurl.
func internalClient(cfg Config, hc *http.Client) (*http.Client, error) {
	return internalurl.Client(hc, internalurl.Options{
		Issuer: cfg.Issuer, URL: cfg.InternalURL, TLSServerName: cfg.InternalTLSServerName, AllowHTTP: cfg.InsecureAllowHTTP,
		Names: internalurl.Names{
			Prefix:        "tokenguard",
			URL:           "Config.InternalURL",
			TLSServerName: "Config.InternalTLSServerName",
			AllowHTTP:     "set InsecureAllowHTTP",
			Transport:     "Config.HTTPClient.Transport",
			Sent:          "a token and this API's credentials",
		},
	})
}

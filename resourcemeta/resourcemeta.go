package resourcemeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/loopback"
)

// WellKnownPath is the well-known URI suffix of RFC 9728 §3. The metadata
// of a resource with a path is at WellKnownPath followed by that path.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// Metadata is a protected resource metadata document (RFC 9728 §2). Only
// Resource is required; empty fields are left out of the JSON.
type Metadata struct {
	// Resource is the protected resource's identifier: its https URL,
	// such as https://api.example.com. Required.
	Resource string `json:"resource"`
	// AuthorizationServers are the issuer URLs of the authorization
	// servers that issue tokens for the resource.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// JWKSURI is the URL of the resource's own JSON Web Key Set, if it
	// signs responses.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// ScopesSupported are the scopes clients request to access the
	// resource (RECOMMENDED).
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported are how the resource accepts bearer tokens:
	// "header", "body" or "query" (RFC 6750 §2).
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceName is a human-readable name of the resource, for clients
	// to show to users (RECOMMENDED).
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is the URL of the resource's documentation
	// for developers.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// ResourcePolicyURI and ResourceTOSURI are the URLs of the
	// resource's data policy and terms of service.
	ResourcePolicyURI string `json:"resource_policy_uri,omitempty"`
	ResourceTOSURI    string `json:"resource_tos_uri,omitempty"`
}

// ForZITADEL returns the metadata of a resource protected with tokens of the
// ZITADEL issuer for the project: the issuer as authorization server, the
// scopes openid and the project audience scope
// (urn:zitadel:iam:org:project:id:{projectID}:aud, without which ZITADEL
// tokens are not for the API), and bearer tokens in the Authorization
// header, the middleware's default source (add "query" to
// BearerMethodsSupported for routes that enable middleware.FromQuery). Set
// ResourceName and the others on the result before [New].
func ForZITADEL(resource, issuer, projectID string) Metadata {
	return Metadata{
		Resource:               resource,
		AuthorizationServers:   []string{issuer},
		ScopesSupported:        []string{"openid", clientauth.ProjectAudienceScope(projectID)},
		BearerMethodsSupported: []string{"header"},
	}
}

// Handler serves one metadata document. It is safe for concurrent use.
type Handler struct {
	body []byte
	path string
	url  string
}

// New checks m and returns a Handler for it. The resource must be an https
// URL (http only on a loopback host) without query, fragment or user info;
// the other URLs must be absolute http(s) URLs; bearer methods must be
// among "header", "body" and "query".
func New(m Metadata) (*Handler, error) {
	u, err := url.Parse(m.Resource)
	switch {
	case m.Resource == "":
		return nil, errors.New("resourcemeta: Metadata.Resource is required")
	case err != nil || u.Host == "" || u.Opaque != "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, fmt.Errorf("resourcemeta: resource %q is not an absolute https URL", m.Resource)
	case u.Scheme == "http" && !loopback.Host(u.Hostname()):
		return nil, fmt.Errorf("resourcemeta: resource %q must be https (plain http only on a loopback host)", m.Resource)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(m.Resource, "#"):
		return nil, fmt.Errorf("resourcemeta: resource %q must not have a query or fragment", m.Resource)
	case u.User != nil:
		return nil, fmt.Errorf("resourcemeta: resource %q must not have user info", u.Redacted())
	}
	for _, as := range m.AuthorizationServers {
		if err := checkURL("authorization server", as); err != nil {
			return nil, err
		}
	}
	for name, v := range map[string]string{"jwks_uri": m.JWKSURI, "resource_documentation": m.ResourceDocumentation,
		"resource_policy_uri": m.ResourcePolicyURI, "resource_tos_uri": m.ResourceTOSURI} {
		if v != "" {
			if err := checkURL(name, v); err != nil {
				return nil, err
			}
		}
	}
	for _, bm := range m.BearerMethodsSupported {
		if bm != "header" && bm != "body" && bm != "query" {
			return nil, fmt.Errorf("resourcemeta: bearer method %q is not header, body or query", bm)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("resourcemeta: %w", err)
	}
	// RFC 9728 §3.1: the well-known suffix goes between the host and the
	// path, with the slash that ends a bare host removed.
	path := WellKnownPath
	if p := u.EscapedPath(); p != "/" {
		path += p
	}
	return &Handler{body: append(body, '\n'), path: path, url: u.Scheme + "://" + u.Host + path}, nil
}

// Path returns where to mount the handler:
// /.well-known/oauth-protected-resource, followed by the resource's path
// if it has one.
func (h *Handler) Path() string { return h.path }

// URL returns the document's URL, for the resource_metadata parameter of
// WWW-Authenticate challenges (RFC 9728 §5.1).
func (h *Handler) URL() string { return h.url }

// ServeHTTP answers GET and HEAD with the document, OPTIONS (a CORS
// preflight) with 204, and other methods with 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		hdr.Set("Access-Control-Allow-Methods", "GET, HEAD")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "public, max-age=3600")
	hdr.Set("Content-Length", strconv.Itoa(len(h.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(h.body)
}

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("resourcemeta: %s %q is not an absolute http(s) URL", what, s)
	}
	return nil
}

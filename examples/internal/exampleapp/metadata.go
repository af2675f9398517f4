package exampleapp

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/tokenguard/tokenguard/resourcemeta"
)

// ResourceName is the resource_name of the examples' metadata.
const ResourceName = "tokenguard example API"

// Metadata serves the API's protected resource metadata (RFC 9728) at GET
// /.well-known/oauth-protected-resource: the resource (Config.ResourceURL,
// or http://ADDR once bound), the issuer as its authorization server and
// the project audience scope. It is public, in front of the API's routes.
// It is safe for concurrent use.
type Metadata struct {
	cfg Config
	h   atomic.Pointer[resourcemeta.Handler] // nil until the resource is known
}

// NewMetadata returns the metadata of the API configured by c. With
// c.ResourceURL set, the document is built (and checked) now; otherwise at
// [Metadata.Bind].
func NewMetadata(c Config) (*Metadata, error) {
	m := &Metadata{cfg: c}
	if c.ResourceURL != "" {
		if err := m.Bind(""); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Bind builds the document for an API listening on addr, unless
// Config.ResourceURL already named the resource.
func (m *Metadata) Bind(addr string) error {
	if m.h.Load() != nil {
		return nil
	}
	resource := m.cfg.ResourceURL
	if resource == "" {
		resource = "http://" + addr
	}
	doc := resourcemeta.ForZITADEL(resource, m.cfg.Issuer, m.cfg.ProjectID)
	doc.ResourceName = ResourceName
	h, err := resourcemeta.New(doc)
	if err != nil {
		return fmt.Errorf("RESOURCE_URL: %w", err)
	}
	m.h.Store(h)
	return nil
}

// URL returns the document's URL, for resource_metadata in challenges; ""
// before the resource is known.
func (m *Metadata) URL() string {
	if h := m.h.Load(); h != nil {
		return h.URL()
	}
	return ""
}

// Wrap serves the document at its well-known path and everything else
// with api.
func (m *Metadata) Wrap(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	path := resourcemeta.WellKnownPath
	if m.cfg.ResourceURL != "" {
		path = m.h.Load().Path()
	}
	mux.Handle(path, m)
	mux.Handle("/", api)
	return mux
}

// ServeHTTP serves the document, or 503 before [Metadata.Bind].
func (m *Metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := m.h.Load()
	if h == nil {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

package resourcemeta_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/resourcemeta"
)

func TestDocumentJSON(t *testing.T) {
	t.Parallel()
	m := resourcemeta.ForZITADEL("https://api.example.com", "https://auth.example.com", "311111111111111111")
	m.ResourceName = "Shop API"
	h, err := resourcemeta.New(m)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, resourcemeta.WellKnownPath, nil))
	const want = `{"resource":"https://api.example.com","authorization_servers":["https://auth.example.com"],` +
		`"scopes_supported":["openid","urn:zitadel:iam:org:project:id:311111111111111111:aud"],` +
		`"bearer_methods_supported":["header"],"resource_name":"Shop API"}` + "\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("GET = %d %s, want 200 %s", rec.Code, rec.Body, want)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Without ResourceName, the field is left out rather than empty.
	h, _ = resourcemeta.New(resourcemeta.ForZITADEL("https://api.example.com", "https://auth.example.com", "1"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if strings.Contains(rec.Body.String(), "resource_name") {
		t.Errorf("document without a name = %s", rec.Body)
	}
}

func TestPathAndURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ resource, path, url string }{
		{"https://api.example.com", "/.well-known/oauth-protected-resource", "https://api.example.com/.well-known/oauth-protected-resource"},
		{"https://api.example.com/", "/.well-known/oauth-protected-resource", "https://api.example.com/.well-known/oauth-protected-resource"},
		{"https://api.example.com/v1", "/.well-known/oauth-protected-resource/v1", "https://api.example.com/.well-known/oauth-protected-resource/v1"},
		{"https://api.example.com:8443/mcp/", "/.well-known/oauth-protected-resource/mcp/", "https://api.example.com:8443/.well-known/oauth-protected-resource/mcp/"},
		{"http://127.0.0.1:8080", "/.well-known/oauth-protected-resource", "http://127.0.0.1:8080/.well-known/oauth-protected-resource"},
		{"http://localhost:8080/api", "/.well-known/oauth-protected-resource/api", "http://localhost:8080/.well-known/oauth-protected-resource/api"},
	}
	for _, tt := range tests {
		h, err := resourcemeta.New(resourcemeta.Metadata{Resource: tt.resource})
		if err != nil {
			t.Errorf("New(%q) err = %v", tt.resource, err)
			continue
		}
		if h.Path() != tt.path || h.URL() != tt.url {
			t.Errorf("New(%q): Path() = %q, URL() = %q, want %q and %q", tt.resource, h.Path(), h.URL(), tt.path, tt.url)
		}
	}
}

// TestClientFindsTheDocument is the client's side of RFC 9728 §3: it
// derives the metadata URL from the resource identifier, fetches it from
// the API's mux, and checks that the document names the same resource.
func TestClientFindsTheDocument(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	resource := srv.URL + "/mcp"
	h, err := resourcemeta.New(resourcemeta.ForZITADEL(resource, "https://auth.example.com", "1"))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("GET "+h.Path(), h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+h.URL()+`"`)
		w.WriteHeader(http.StatusUnauthorized)
	})

	u, _ := url.Parse(resource)
	derived := u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + u.Path
	if derived != h.URL() {
		t.Fatalf("URL() = %q, a client derives %q", h.URL(), derived)
	}
	resp, err := srv.Client().Get(derived)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", derived, resp.StatusCode, err)
	}
	if doc.Resource != resource || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != "https://auth.example.com" {
		t.Errorf("document = %+v, want resource %q (RFC 9728 §3.3) and the issuer", doc, resource)
	}
	// HEAD is served too, without a body.
	req, _ := http.NewRequest(http.MethodHead, derived, nil)
	head, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(head.Body)
	head.Body.Close()
	if head.StatusCode != http.StatusOK || len(body) != 0 || head.ContentLength <= 0 {
		t.Errorf("HEAD = %d, %d body bytes, Content-Length %d", head.StatusCode, len(body), head.ContentLength)
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	h, _ := resourcemeta.New(resourcemeta.Metadata{Resource: "https://api.example.com"})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, "PROPFIND"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, resourcemeta.WellKnownPath, strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD, OPTIONS" || strings.Contains(rec.Body.String(), "resource") {
			t.Errorf("%s = %d Allow %q body %q, want 405 without the document", m, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodOptions, resourcemeta.WellKnownPath, nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Methods") != "GET, HEAD" {
		t.Errorf("preflight = %d %v", rec.Code, rec.Header())
	}
}

// TestNoCredentialedCrossOriginReads: the document is readable from any
// origin, but never with credentials: the origin is not reflected and
// Access-Control-Allow-Credentials is never sent, so a page elsewhere cannot
// make a browser send its cookies or authorization along and read the
// answer; the answer is the same with or without them.
func TestNoCredentialedCrossOriginReads(t *testing.T) {
	t.Parallel()
	h, _ := resourcemeta.New(resourcemeta.Metadata{Resource: "https://api.example.com"})
	plain := httptest.NewRecorder()
	h.ServeHTTP(plain, httptest.NewRequest(http.MethodGet, resourcemeta.WellKnownPath, nil))
	req := httptest.NewRequest(http.MethodGet, resourcemeta.WellKnownPath, nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Cookie", "session=s3cret")
	req.Header.Set("Authorization", "Bearer t0k3n")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q, want * (not the reflected origin)", got)
	}
	if _, ok := rec.Header()["Access-Control-Allow-Credentials"]; ok {
		t.Errorf("Access-Control-Allow-Credentials is set")
	}
	if rec.Body.String() != plain.Body.String() || strings.Contains(rec.Body.String(), "s3cret") || strings.Contains(rec.Body.String(), "t0k3n") {
		t.Errorf("body with credentials = %s, want the same document as without", rec.Body)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	ok := "https://api.example.com"
	tests := []struct {
		name   string
		m      resourcemeta.Metadata
		wantIn string
	}{
		{"no resource", resourcemeta.Metadata{}, "Resource is required"},
		{"relative", resourcemeta.Metadata{Resource: "api.example.com"}, "not an absolute https URL"},
		{"other scheme", resourcemeta.Metadata{Resource: "ftp://api.example.com"}, "not an absolute https URL"},
		{"plain http", resourcemeta.Metadata{Resource: "http://api.example.com"}, "must be https"},
		{"query", resourcemeta.Metadata{Resource: "https://api.example.com/?tenant=1"}, "query or fragment"},
		{"empty query", resourcemeta.Metadata{Resource: "https://api.example.com/?"}, "query or fragment"},
		{"fragment", resourcemeta.Metadata{Resource: "https://api.example.com/#x"}, "query or fragment"},
		{"empty fragment", resourcemeta.Metadata{Resource: "https://api.example.com/#"}, "query or fragment"},
		{"user info", resourcemeta.Metadata{Resource: "https://u:secret@api.example.com"}, "user info"},
		{"bad authorization server", resourcemeta.Metadata{Resource: ok, AuthorizationServers: []string{"auth.example.com"}}, "authorization server"},
		{"bad jwks_uri", resourcemeta.Metadata{Resource: ok, JWKSURI: "/keys"}, "jwks_uri"},
		{"bad bearer method", resourcemeta.Metadata{Resource: ok, BearerMethodsSupported: []string{"cookie"}}, `bearer method "cookie"`},
	}
	for _, tt := range tests {
		_, err := resourcemeta.New(tt.m)
		if err == nil || !strings.HasPrefix(err.Error(), "resourcemeta: ") || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("%s: New(%+v) err = %v, want it to mention %q", tt.name, tt.m, err, tt.wantIn)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
}

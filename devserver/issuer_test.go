package devserver_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/internal/testcert"
)

// get sends a GET for path to srv's listen address with the given headers
// (a "Host" entry sets the Host header) and returns the status and body.
func get(t *testing.T, hc *http.Client, srv *devserver.Server, path string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func newHTTPClient(t *testing.T, tr *http.Transport) *http.Client {
	t.Helper()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestWithIssuerPicksTheInstanceByHost: with a public issuer the server
// names it in discovery, and like ZITADEL answers only requests that name
// its host, in x-zitadel-instance-host or else in Host.
func TestWithIssuerPicksTheInstanceByHost(t *testing.T) {
	t.Parallel()
	const issuer = "http://zitadel.example:8080"
	var mu sync.Mutex
	var seen []string
	srv, err := devserver.Start(devserver.WithIssuer(issuer), devserver.WithRequestObserver(func(r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.URL.Path)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if srv.Issuer() != issuer || !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("Issuer() = %q, URL() = %q", srv.Issuer(), srv.URL())
	}
	hc := newHTTPClient(t, &http.Transport{})
	const wellKnown = "/.well-known/openid-configuration"

	tests := []struct {
		name     string
		headers  map[string]string
		wantCode int
	}{
		{"loopback Host (a plain internal URL)", nil, http.StatusNotFound},
		{"public Host", map[string]string{"Host": "zitadel.example:8080"}, http.StatusOK},
		{"public Host in other case", map[string]string{"Host": "ZITADEL.example:8080"}, http.StatusOK},
		{"public name, wrong port", map[string]string{"Host": "zitadel.example"}, http.StatusNotFound},
		{"instance header wins over Host", map[string]string{"Host": "zitadel.zitadel.svc", devserver.InstanceHostHeader: "zitadel.example:8080"}, http.StatusOK},
		{"instance header names another host", map[string]string{"Host": "zitadel.example:8080", devserver.InstanceHostHeader: "other.example:8080"}, http.StatusNotFound},
		{"instance header with a path", map[string]string{devserver.InstanceHostHeader: "zitadel.example:8080/x"}, http.StatusNotFound},
		{"suffix of the host", map[string]string{"Host": "zitadel.example:8080.evil"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, hc, srv, wellKnown, tt.headers)
			if code != tt.wantCode {
				t.Fatalf("GET discovery with %v = %d %q, want %d", tt.headers, code, body, tt.wantCode)
			}
			if code == http.StatusNotFound && !strings.Contains(body, "instance not found") {
				t.Errorf("404 body = %q, want it to say instance not found", body)
			}
			if code != http.StatusOK {
				return
			}
			var doc struct {
				Issuer                string `json:"issuer"`
				IntrospectionEndpoint string `json:"introspection_endpoint"`
				TokenEndpoint         string `json:"token_endpoint"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Issuer != issuer || doc.IntrospectionEndpoint != issuer+devserver.IntrospectPath || doc.TokenEndpoint != issuer+devserver.TokenPath {
				t.Errorf("discovery = %+v, want the public issuer %s and endpoints under it", doc, issuer)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(tests) || !strings.HasSuffix(seen[0], wellKnown) {
		t.Errorf("observer saw %q, want %d discovery requests", seen, len(tests))
	}
}

func TestWithIssuerDefaultPort(t *testing.T) {
	t.Parallel()
	srv, err := devserver.Start(devserver.WithIssuer("https://auth.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hc := newHTTPClient(t, &http.Transport{})
	for _, host := range []string{"auth.example.com", "auth.example.com:443"} {
		if code, body := get(t, hc, srv, "/.well-known/openid-configuration", map[string]string{"Host": host}); code != http.StatusOK {
			t.Errorf("Host %q: %d %q, want 200", host, code, body)
		}
	}
	if code, _ := get(t, hc, srv, "/.well-known/openid-configuration", map[string]string{"Host": "auth.example.com:80"}); code != http.StatusNotFound {
		t.Errorf("Host auth.example.com:80 for an https issuer: %d, want 404", code)
	}
}

func TestWithIssuerRefusesBadIssuers(t *testing.T) {
	t.Parallel()
	for _, iss := range []string{"auth.example.com", "ftp://auth.example.com", "https://auth.example.com/", "https://auth.example.com/zitadel",
		"https://auth.example.com?x=1", "https://auth.example.com#f", "https://user@auth.example.com", "https://", "http://%zz"} {
		if srv, err := devserver.Start(devserver.WithIssuer(iss)); err == nil {
			srv.Close()
			t.Errorf("Start(WithIssuer(%q)) succeeded, want an error", iss)
		} else if !strings.HasPrefix(err.Error(), "devserver: issuer") {
			t.Errorf("Start(WithIssuer(%q)) err = %v", iss, err)
		}
	}
}

func TestWithTLS(t *testing.T) {
	t.Parallel()
	if _, err := devserver.Start(devserver.WithTLS(&tls.Config{})); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("Start(WithTLS without a certificate) err = %v", err)
	}
	cert, pool := testcert.New("127.0.0.1")
	srv, err := devserver.Start(devserver.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !strings.HasPrefix(srv.Issuer(), "https://127.0.0.1:") || srv.URL() != srv.Issuer() {
		t.Fatalf("Issuer() = %q, URL() = %q, want https://127.0.0.1:PORT for both", srv.Issuer(), srv.URL())
	}
	hc := newHTTPClient(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	code, body := get(t, hc, srv, "/.well-known/openid-configuration", nil)
	if code != http.StatusOK || !strings.Contains(body, `"issuer":"`+srv.Issuer()+`"`) {
		t.Errorf("discovery over TLS = %d %q", code, body)
	}
	// Verification is not off: a client that does not trust the certificate fails.
	if _, err := newHTTPClient(t, &http.Transport{}).Get(srv.URL() + "/.well-known/openid-configuration"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("GET with the system roots err = %v, want a certificate error", err)
	}
}

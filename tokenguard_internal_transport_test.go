package tokenguard

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

type recordingTransport struct{ got []*http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

// TestInternalTransportMapsOnlyTheIssuersOrigin: requests for the issuer's
// scheme and host go to the internal address with the public host in Host
// and x-zitadel-instance-host; look-alike hosts, another scheme or port pass
// through untouched, so that nothing but the issuer's own requests is sent
// to the internal address or given its Host.
func TestInternalTransportMapsOnlyTheIssuersOrigin(t *testing.T) {
	t.Parallel()
	rec := &recordingTransport{}
	hc, err := internalClient(Config{Issuer: "https://auth.example.com", InternalURL: "http://127.0.0.1:8080"}, &http.Client{Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url    string
		mapped bool
	}{
		{"https://auth.example.com/oauth/v2/introspect", true},
		{"https://AUTH.Example.COM/.well-known/openid-configuration", true},
		{"https://auth.example.com:443/oauth/v2/introspect", true},
		{"http://auth.example.com/oauth/v2/introspect", false},
		{"https://auth.example.com:8443/oauth/v2/introspect", false},
		{"https://auth.example.com.evil.test/oauth/v2/introspect", false},
		{"https://evil.test/auth.example.com/oauth/v2/introspect", false},
		{"https://xauth.example.com/", false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, tt.url, nil)
		req.Header.Set("X-Custom", "kept")
		host := req.Host
		resp, err := hc.Transport.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip(%s) err = %v", tt.url, err)
		}
		resp.Body.Close()
		sent := rec.got[len(rec.got)-1]
		if tt.mapped {
			if sent.URL.String() != "http://127.0.0.1:8080"+req.URL.Path || sent.Host != "auth.example.com" ||
				sent.Header.Get(InstanceHostHeader) != "auth.example.com" || sent.Header.Get("X-Custom") != "kept" {
				t.Errorf("%s was sent as %s Host %q instance %q, want the internal URL with Host auth.example.com", tt.url, sent.URL, sent.Host, sent.Header.Get(InstanceHostHeader))
			}
			if sent == req || req.URL.String() != tt.url || req.Host != host || req.Header.Get(InstanceHostHeader) != "" {
				t.Errorf("RoundTrip(%s) changed the caller's request: %s Host %q", tt.url, req.URL, req.Host)
			}
			continue
		}
		if sent != req || sent.Header.Get(InstanceHostHeader) != "" {
			t.Errorf("%s was mapped (sent as %s, instance %q), want it passed through untouched", tt.url, sent.URL, sent.Header.Get(InstanceHostHeader))
		}
	}
}

// TestInternalTLSServerNameOnlyForTheInternalAddress: the issuer's name is
// what an https internal address is verified for; requests that pass
// through (a JWKS on another host, say) keep their own server name.
func TestInternalTLSServerNameOnlyForTheInternalAddress(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sni []string
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	other.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		sni = append(sni, h.ServerName)
		mu.Unlock()
		return nil, nil
	}}
	other.StartTLS()
	t.Cleanup(other.Close)
	base := other.Client().Transport.(*http.Transport).Clone() // trusts the test certificate (*.example.com)
	addr := other.Listener.Addr().String()
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) { // every host is the test server
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc, err := internalClient(Config{Issuer: "https://auth.example.com", InternalURL: "https://127.0.0.1:1"}, &http.Client{Transport: base})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get("https://keys.example.com/jwks") // another host than the issuer's

	if err != nil {
		t.Fatalf("pass-through request: %v (verified for the issuer's name instead of its own?)", err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(sni) != 1 || sni[0] != "keys.example.com" {
		t.Errorf("pass-through request sent server names %q, want [keys.example.com]", sni)
	}
}

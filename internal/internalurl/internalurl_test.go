package internalurl

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenguard/tokenguard/internal/testcert"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"http://zitadel.zitadel.svc.cluster.local:8080", true},
		{"https://zitadel.svc", true},
		{"https://zitadel.svc/", true},
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"HTTPS://Zitadel.svc", true},
		{"", false},
		{"zitadel.svc:8080", false},                // no scheme: parsed as scheme "zitadel.svc"
		{"//zitadel.svc:8080", false},              // no scheme
		{"ftp://zitadel.svc", false},               // not http
		{"unix:///var/run/zitadel.sock", false},    // no host
		{"http://", false},                         // no host
		{"http:zitadel.svc", false},                // opaque
		{"https://u:p@zitadel.svc", false},         // user info would go to another host's logs
		{"https://u@zitadel.svc", false},           // user info
		{"https://zitadel.svc/zitadel", false},     // a path would be dropped, not joined
		{"https://zitadel.svc?x=1", false},         // query
		{"https://zitadel.svc/?", false},           // empty query
		{"https://zitadel.svc#frag", false},        // fragment
		{"http://zitadel.svc:8080 ", false},        // stray space
		{"http://zitadel svc:8080", false},         // space in host
		{"http://zitadel.svc:80%2F..", false},      // escaped junk in the port
		{"https://zitadel.svc\n.evil.test", false}, // control character
	}
	for _, tt := range tests {
		u, ok := parseURL(tt.in)
		if ok != tt.ok {
			t.Errorf("parseURL(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
		if ok && u.Host == "" {
			t.Errorf("parseURL(%q) = %v without a host", tt.in, u)
		}
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestClientErrors: every mistake is refused before any request, names the
// setting as Names says (or by the default names), and starts with Prefix.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	var sent atomic.Int32
	counting := &http.Client{Transport: roundTripperFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, http.ErrNotSupported
	})}
	flags := Names{Prefix: "tokenguard", URL: "-internal-url", TLSServerName: "-internal-tls-server-name", AllowHTTP: "pass -insecure-allow-http",
		Transport: "the transport", Sent: "a signed assertion"}
	const iss = "https://auth.example.com"
	tests := []struct {
		name          string
		o             Options
		base          *http.Client
		wantDefault   string // with the zero Names
		wantWithFlags string // with flags
	}{
		{name: "plain http beyond loopback", o: Options{Issuer: iss, URL: "http://zitadel.zitadel.svc.cluster.local:8080"},
			wantDefault:   `internal URL "http://zitadel.zitadel.svc.cluster.local:8080" uses plain http on a host that is not loopback`,
			wantWithFlags: `-internal-url "http://zitadel.zitadel.svc.cluster.local:8080" uses plain http on a host that is not loopback, and each request carries a signed assertion: use https, or pass -insecure-allow-http for a trusted network`},
		{name: "plain http to a look-alike of localhost", o: Options{Issuer: iss, URL: "http://localhost.evil.test"},
			wantDefault: "uses plain http", wantWithFlags: "pass -insecure-allow-http"},
		{name: "plain http to a private address", o: Options{Issuer: iss, URL: "http://10.0.0.1:8080"},
			wantDefault: `"http://10.0.0.1:8080" uses plain http`, wantWithFlags: "a signed assertion"},
		{name: "a path", o: Options{Issuer: iss, URL: "https://zitadel.svc/zitadel"},
			wantDefault: "no path", wantWithFlags: `-internal-url "https://zitadel.svc/zitadel" must be an absolute http or https URL with no path, query or fragment`},
		{name: "no scheme", o: Options{Issuer: iss, URL: "zitadel.svc:8080"},
			wantDefault: `internal URL "zitadel.svc:8080" must be an absolute http or https URL`, wantWithFlags: "such as http://zitadel.zitadel.svc.cluster.local:8080"},
		{name: "user info", o: Options{Issuer: iss, URL: "https://admin:secret@zitadel.svc"}, wantDefault: `internal URL "https://admin:xxxxx@zitadel.svc" must be an absolute http or https URL`, wantWithFlags: "-internal-url"},
		{name: "server name without URL", o: Options{Issuer: iss, TLSServerName: "auth.example.com"},
			wantDefault: "TLS server name is set without internal URL", wantWithFlags: "-internal-tls-server-name is set without -internal-url"},
		{name: "server name with plain http", o: Options{Issuer: iss, URL: "http://127.0.0.1:1", TLSServerName: "auth.example.com"},
			wantDefault: `TLS server name is set but internal URL "http://127.0.0.1:1" is not https`, wantWithFlags: `-internal-tls-server-name is set but -internal-url "http://127.0.0.1:1" is not https`},
		{name: "https through a transport that cannot set the server name", o: Options{Issuer: iss, URL: "https://zitadel.svc"}, base: counting,
			wantDefault: "an https internal URL needs the HTTP client's Transport to be nil or an *http.Transport", wantWithFlags: `needs the transport to be nil or an *http.Transport (it is a internalurl.roundTripperFunc), so that the server's certificate can be verified for "auth.example.com"`},
		{name: "no issuer", o: Options{URL: "http://127.0.0.1:1"}, wantDefault: `issuer "" is not an absolute URL`, wantWithFlags: "issuer"},
		{name: "relative issuer", o: Options{Issuer: "auth.example.com", URL: "http://127.0.0.1:1"}, wantDefault: `issuer "auth.example.com" is not an absolute URL`, wantWithFlags: "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := tt.base
			if base == nil {
				base = counting
			}
			for _, c := range []struct {
				names        Names
				prefix, want string
			}{{Names{}, "internalurl: ", tt.wantDefault}, {flags, "tokenguard: ", tt.wantWithFlags}} {
				o := tt.o
				o.Names = c.names
				hc, err := Client(base, o)
				if err == nil || hc != nil || !strings.HasPrefix(err.Error(), c.prefix) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("Client(%+v) = %v, %v; want a one-line error starting %q that mentions %q", o, hc, err, c.prefix, c.want)
				}
				if err == nil {
					continue
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("Client(%+v): the error repeats the URL's password: %v", o, err)
				}
				if c.names == flags && strings.Contains(err.Error(), "internal URL") {
					t.Errorf("Client with flag names: %v still says internal URL", err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := sent.Load(); n != 0 {
			t.Errorf("%d requests were sent for refused options", n)
		}
	})
}

// TestClientWithoutURL: no URL, no change: base itself comes back.
func TestClientWithoutURL(t *testing.T) {
	t.Parallel()
	base := &http.Client{}
	if hc, err := Client(base, Options{Issuer: "https://auth.example.com"}); err != nil || hc != base {
		t.Errorf("Client(no URL) = %p, %v; want base %p", hc, err, base)
	}
	if hc, err := Client(base, Options{}); err != nil || hc != base {
		t.Errorf("Client(zero Options) = %p, %v; want base %p", hc, err, base)
	}
}

type seen struct{ path, host, instance, custom string }

// recorder is a loopback server that records what reaches it.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	got  []seen
	then http.HandlerFunc // optional: answers after recording
}

func newRecorder(t *testing.T, tlsCert *tls.Certificate) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.got = append(rec.got, seen{r.URL.Path, r.Host, r.Header.Get(InstanceHostHeader), r.Header.Get("X-Custom")})
		then := rec.then
		rec.mu.Unlock()
		if then != nil {
			then(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	if tlsCert != nil {
		rec.TLS = &tls.Config{Certificates: []tls.Certificate{*tlsCert}}
		rec.StartTLS()
	} else {
		rec.Start()
	}
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.got...)
}

func get(t *testing.T, hc *http.Client, url string, header ...string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// TestClientOverLoopback: a real server at the internal address receives the
// issuer's requests with Host and the instance header set to the issuer's
// host (a value the caller set is replaced), and a request for another host
// (a second loopback server) passes through untouched, redirects included.
func TestClientOverLoopback(t *testing.T) {
	t.Parallel()
	internal, other := newRecorder(t, nil), newRecorder(t, nil)
	const issuer = "http://zitadel.invalid:8080"
	base := &http.Client{}
	hc, err := Client(base, Options{Issuer: issuer, URL: internal.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	if base.Transport != nil {
		t.Errorf("Client changed base: Transport = %T", base.Transport)
	}

	get(t, hc, issuer+"/.well-known/openid-configuration", "X-Custom", "kept")
	get(t, hc, "http://ZITADEL.invalid:8080/oauth/v2/token", InstanceHostHeader, "other-instance.example.com") // a caller's value is replaced
	get(t, hc, other.URL+"/keys", InstanceHostHeader, "kept.example.com")

	want := []seen{{"/.well-known/openid-configuration", "zitadel.invalid:8080", "zitadel.invalid:8080", "kept"}, {"/oauth/v2/token", "zitadel.invalid:8080", "zitadel.invalid:8080", ""}}
	if got := internal.requests(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("the internal server saw %+v, want %+v", got, want)
	}
	otherHost := strings.TrimPrefix(other.URL, "http://")
	if got := other.requests(); len(got) != 1 || got[0] != (seen{"/keys", otherHost, "kept.example.com", ""}) {
		t.Errorf("the other server saw %+v, want /keys with its own Host and the caller's header", got)
	}

	// The internal server redirects to the other host: the redirect is
	// followed to the other server as it is, without the issuer's Host.
	internal.mu.Lock()
	internal.then = func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}
	internal.mu.Unlock()
	get(t, hc, issuer+"/moved")
	if got := other.requests(); len(got) != 2 || got[1] != (seen{"/elsewhere", otherHost, "", ""}) {
		t.Errorf("after a redirect the other server saw %+v, want /elsewhere with Host %s and no instance header", got, otherHost)
	}
}

// TestClientOnlyTheIssuersOrigin: requests for the issuer's scheme and host
// are mapped (any case, explicit default port); look-alike hosts, another
// scheme or port pass through, and the caller's request is never changed.
func TestClientOnlyTheIssuersOrigin(t *testing.T) {
	t.Parallel()
	var got []*http.Request
	rec := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		got = append(got, req)
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
	})
	hc, err := Client(&http.Client{Transport: rec}, Options{Issuer: "https://auth.example.com", URL: "http://127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url    string
		mapped bool
	}{
		{"https://auth.example.com/oauth/v2/token", true},
		{"https://AUTH.Example.COM/.well-known/openid-configuration", true},
		{"https://auth.example.com:443/oauth/v2/token", true},
		{"http://auth.example.com/oauth/v2/token", false},
		{"https://auth.example.com:8443/oauth/v2/token", false},
		{"https://auth.example.com.evil.test/oauth/v2/token", false},
		{"https://evil.test/auth.example.com/oauth/v2/token", false},
		{"https://xauth.example.com/", false},
		{"https://auth.example.com@evil.test/", false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, tt.url, nil)
		host := req.Host
		resp, err := hc.Transport.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip(%s) err = %v", tt.url, err)
		}
		resp.Body.Close()
		sent := got[len(got)-1]
		if !tt.mapped {
			if sent != req || sent.Header.Get(InstanceHostHeader) != "" {
				t.Errorf("%s was mapped (sent as %s, instance %q), want it passed through untouched", tt.url, sent.URL, sent.Header.Get(InstanceHostHeader))
			}
			continue
		}
		if sent.URL.String() != "http://127.0.0.1:8080"+req.URL.Path || sent.Host != "auth.example.com" || sent.Header.Get(InstanceHostHeader) != "auth.example.com" {
			t.Errorf("%s was sent as %s Host %q instance %q, want the internal URL with Host auth.example.com", tt.url, sent.URL, sent.Host, sent.Header.Get(InstanceHostHeader))
		}
		if sent == req || req.URL.String() != tt.url || req.Host != host || req.Header.Get(InstanceHostHeader) != "" {
			t.Errorf("RoundTrip(%s) changed the caller's request: %s Host %q", tt.url, req.URL, req.Host)
		}
	}
}

// TestClientKeepsThePublicPort: a public issuer with a port names it in
// Host and in the instance header; an https URL is verified for the
// issuer's host name, and only the mapped transport carries that name.
func TestClientKeepsThePublicPort(t *testing.T) {
	t.Parallel()
	hc, err := Client(&http.Client{Transport: &http.Transport{}}, Options{Issuer: "http://zitadel.example:8080", URL: "https://zitadel.svc:8443"})
	if err != nil {
		t.Fatal(err)
	}
	it := hc.Transport.(*transport)
	if tr := it.mapped.(*http.Transport); tr.TLSClientConfig.ServerName != "zitadel.example" {
		t.Errorf("ServerName = %q, want the issuer's host name zitadel.example", tr.TLSClientConfig.ServerName)
	}
	if tr := it.base.(*http.Transport); tr.TLSClientConfig != nil && tr.TLSClientConfig.ServerName != "" {
		t.Errorf("the pass-through transport's ServerName = %q, want none", tr.TLSClientConfig.ServerName)
	}
	var got []*http.Request
	rec := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		got = append(got, req)
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
	})
	it.base, it.mapped = rec, rec
	req, _ := http.NewRequest(http.MethodGet, "http://zitadel.example:8080/.well-known/openid-configuration", nil)
	if _, err := hc.Transport.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if sent := got[0]; sent.URL.String() != "https://zitadel.svc:8443/.well-known/openid-configuration" || sent.Host != "zitadel.example:8080" ||
		sent.Header.Get(InstanceHostHeader) != "zitadel.example:8080" {
		t.Errorf("sent %s Host %q instance %q", sent.URL, sent.Host, sent.Header.Get(InstanceHostHeader))
	}
}

// TestClientTLS: an https internal address on loopback is verified for the
// issuer's name, not for 127.0.0.1 and not skipped; a certificate for
// another name fails before the server sees a request, unless
// TLSServerName names it. The base transport is cloned, not changed.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	const issuer = "https://auth.example.invalid"
	cert, pool := testcert.New("auth.example.invalid")
	good := newRecorder(t, &cert)
	otherCert, otherPool := testcert.New("other.example.invalid")
	bad := newRecorder(t, &otherCert)

	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	hc, err := Client(&http.Client{Transport: base}, Options{Issuer: issuer, URL: good.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	get(t, hc, issuer+"/oauth/v2/token")
	if got := good.requests(); len(got) != 1 || got[0].host != "auth.example.invalid" || got[0].instance != "auth.example.invalid" {
		t.Errorf("the internal server saw %+v", got)
	}
	if base.TLSClientConfig.ServerName != "" {
		t.Errorf("Client changed the base transport: ServerName = %q", base.TLSClientConfig.ServerName)
	}

	// The attacker's move: another server at the internal address, with a
	// certificate for its own name that the client trusts.
	otherBase := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: otherPool}}
	t.Cleanup(otherBase.CloseIdleConnections)
	hc, err = Client(&http.Client{Transport: otherBase}, Options{Issuer: issuer, URL: bad.URL})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(issuer + "/oauth/v2/token")
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate is valid for other.example.invalid, not auth.example.invalid") {
		t.Errorf("GET through a certificate for another name err = %v, want a verification error", err)
	}
	if n := len(bad.requests()); n != 0 {
		t.Errorf("%d requests reached the server whose certificate failed verification", n)
	}
	hc, err = Client(&http.Client{Transport: otherBase}, Options{Issuer: issuer, URL: bad.URL, TLSServerName: "other.example.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	get(t, hc, issuer+"/oauth/v2/token")
	if n := len(bad.requests()); n != 1 {
		t.Errorf("with TLSServerName the server saw %d requests, want 1", n)
	}
}

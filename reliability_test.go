package tokenguard_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// faults are the ways an authorization server fails. Each writes its own
// answer (or none) and returns true.
var faults = map[string]func(w http.ResponseWriter) bool{
	"500": status(500), "502": status(502), "503": status(503), "504": status(504),
	"429 with Retry-After": func(w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	},
	"200 with invalid JSON": func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":tr`))
		return true
	},
	"200 with active as a string": func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":"true","aud":"` + project + `"}`))
		return true
	},
	"200 with a non-JSON content type": func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`{"active":true,"aud":"` + project + `"}`))
		return true
	},
	"a 10 MB body": func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"pad":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", 10<<20)))
		return true
	},
	"a body trickling one byte a second": func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		for _, b := range []byte(`{"active":true}`) {
			if _, err := w.Write([]byte{b}); err != nil {
				return true
			}
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
		}
		return true
	},
	"connection reset mid-body": func(w http.ResponseWriter) bool {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"active\":tr")
		_ = buf.Flush()
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
		return true
	},
	"timeout": func(w http.ResponseWriter) bool {
		time.Sleep(1500 * time.Millisecond) // longer than the guard's 500 ms timeout
		w.WriteHeader(http.StatusOK)
		return true
	},
}

func status(code int) func(w http.ResponseWriter) bool {
	return func(w http.ResponseWriter) bool { w.WriteHeader(code); return true }
}

// TestFaultsFailClosed is not parallel: goleak must see only its goroutines.
func TestFaultsFailClosed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const timeout = 500 * time.Millisecond
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			as := fakeas.Start()
			defer as.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			keyJSON, _ := as.NewApp(project)
			guard, err := tokenguard.New(context.Background(), tokenguard.Config{
				Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project, HTTPClient: &http.Client{Transport: tr},
				IntrospectOptions: []introspect.Option{introspect.WithTimeout(timeout), introspect.WithRetries(1, 10*time.Millisecond)},
			}, discardLogs())
			if err != nil {
				t.Fatal(err)
			}
			h := guard.Wrap(ok)
			tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
			as.SetFault(fault)
			for range 2 { // twice: the first failure must not be cached
				start := time.Now()
				rec := serve(h, tok)
				if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
					t.Errorf("%s: %d Retry-After %q, want 503 with Retry-After", name, rec.Code, rec.Header().Get("Retry-After"))
				}
				if d := time.Since(start); d > 3*timeout {
					t.Errorf("%s: answered after %v with a %v timeout", name, d, timeout)
				}
			}
			calls := as.Calls()
			as.SetFault(nil)
			if rec := serve(h, tok); rec.Code != http.StatusOK {
				t.Errorf("%s: after recovery %d, want 200", name, rec.Code)
			}
			if as.Calls() == calls {
				t.Errorf("%s: the recovery request made no introspection: the failure was cached", name)
			}
			if name == "429 with Retry-After" {
				as.SetFault(fault)
				if rec := serve(h, as.Mint(fakeas.Token{Subject: "v", Audience: []string{project}})); rec.Header().Get("Retry-After") != "7" {
					t.Errorf("429: Retry-After %q, want the server's 7", rec.Header().Get("Retry-After"))
				}
			}
		})
	}
}

func TestConnectionRefusedAndTLSErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	as := fakeas.Start()
	defer as.Close()
	keyJSON, _ := as.NewApp(project)
	key := writeKey(t, keyJSON)

	// A TLS endpoint whose certificate this client does not trust.
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + l.Addr().String() + "/introspect"
	l.Close()

	for name, endpoint := range map[string]string{"connection refused": refused, "TLS certificate error": tlsSrv.URL + "/introspect"} {
		t.Run(name, func(t *testing.T) {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			guard, err := tokenguard.New(context.Background(), tokenguard.Config{
				Issuer: as.Issuer, IntrospectionEndpoint: endpoint, KeyFile: key, ProjectID: project, HTTPClient: &http.Client{Transport: tr},
				IntrospectOptions: []introspect.Option{introspect.WithRetries(1, 10*time.Millisecond)},
			}, discardLogs())
			if err != nil {
				t.Fatal(err)
			}
			if rec := serve(guard.Wrap(ok), "tok"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Errorf("%s: %d, want 503 with Retry-After", name, rec.Code)
			}
		})
	}
	t.Run("discovery fails at start-up", func(t *testing.T) {
		for _, issuer := range []string{strings.TrimSuffix(refused, "/introspect"), tlsSrv.URL} {
			_, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: issuer, KeyFile: key, ProjectID: project, HTTPClient: &http.Client{Transport: &http.Transport{}}})
			if err == nil || !strings.Contains(err.Error(), "unavailable") {
				t.Errorf("New(%s) err = %v, want an unavailable discovery error", issuer, err)
			}
		}
	})
}

func TestCircuitBreakerFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	guard, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project,
		IntrospectOptions: []introspect.Option{introspect.WithRetries(0, 0), introspect.WithCircuitBreaker(3, 300*time.Millisecond)}}, discardLogs())
	if err != nil {
		t.Fatal(err)
	}
	h := guard.Wrap(ok)
	as.SetFault(status(503))
	for i := range 3 {
		serve(h, fmt.Sprint("t", i))
	}
	calls := as.Calls()
	rec := serve(h, "t9")
	if rec.Code != 503 || as.Calls() != calls {
		t.Errorf("breaker open: %d and %d new calls, want 503 without calling the server", rec.Code, as.Calls()-calls)
	}
	as.SetFault(nil)
	time.Sleep(350 * time.Millisecond) // the cooldown
	if rec := serve(h, as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})); rec.Code != 200 {
		t.Errorf("after the cooldown with the server back: %d, want 200", rec.Code)
	}
}

func serve(h http.Handler, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/examples/internal/exampletest"
	"github.com/tokenguard/tokenguard/internal/fakeas"
)

func TestContract(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, cfg exampleapp.Config) http.Handler {
		guard, err := exampleapp.NewGuard(context.Background(), cfg, exampleapp.DiscardLogs())
		if err != nil {
			t.Fatal(err)
		}
		return newRouter(guard.Middleware, http.NotFoundHandler())
	})
}

func TestMetricsEndpoint(t *testing.T) {
	metrics, shutdown, err := installMetrics()
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	s := exampletest.NewStack(t)
	guard, err := exampleapp.NewGuard(context.Background(), s.Config, exampleapp.DiscardLogs())
	if err != nil {
		t.Fatal(err)
	}
	h := newRouter(guard.Middleware, metrics)
	tok := s.AS.Mint(fakeas.Token{Subject: "u", Audience: []string{exampletest.ProjectID}})
	for _, auth := range []string{"Bearer " + tok, "Bearer " + tok, ""} {
		req := httptest.NewRequest("GET", "/api/ping", nil) // one decision per request
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	admin := httptest.NewRequest("GET", "/api/admin", nil)
	admin.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(httptest.NewRecorder(), admin) // one more decision: insufficient_scope
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`tokenguard_decisions_total{otel_scope_name="github.com/tokenguard/tokenguard"`,
		`outcome="allowed",source="introspected"} 2`, `outcome="no_token"} 1`, `outcome="insufficient_scope",source="introspected"} 1`,
		`tokenguard_cache_lookups_total{level="lru"`, `tokenguard_introspection_duration_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, tok) {
		t.Errorf("/metrics contains the token")
	}
}

func TestEvents(t *testing.T) {
	exampletest.Events(t, func(t *testing.T, guard *tokenguard.Guard) http.Handler {
		return newRouter(guard.Middleware, http.NotFoundHandler())
	})
}

func TestProgram(t *testing.T) { exampletest.Program(t, run) }

func TestLocalJWT(t *testing.T) {
	exampletest.LocalJWT(t, run, func(t *testing.T, guard *tokenguard.Guard) http.Handler {
		return newRouter(guard.Middleware, http.NotFoundHandler())
	})
}

package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

// Every 401 challenge carries resource_metadata (RFC 9728 §5.1) when
// configured; other statuses and a hostile URL cannot break the header.
func TestResourceMetadataInChallenges(t *testing.T) {
	t.Parallel()
	const url = "https://api.example.com/.well-known/oauth-protected-resource"
	s := newStack(t, project, middleware.WithResourceMetadata(url))
	good := s.mint(fakeas.Token{})
	other := s.mint(fakeas.Token{Audience: []string{"another-project"}})
	param := `resource_metadata="` + url + `"`
	for _, tc := range []struct {
		name   string
		path   string
		header []string
		status int
		want   bool
	}{
		{"no token", "/api", nil, 401, true},
		{"inactive token", "/api", []string{"Bearer unknown-token"}, 401, true},
		{"wrong audience", "/api", []string{"Bearer " + other}, 401, true},
		{"malformed header", "/api", []string{"Bearer a", "Bearer b"}, 400, false},
		{"missing role", "/api/admin", []string{"Bearer " + good}, 403, false},
		{"accepted", "/api", []string{"Bearer " + good}, 200, false},
	} {
		rec := s.do(tc.path, tc.header...)
		h := rec.Header().Get("WWW-Authenticate")
		if rec.Code != tc.status || strings.Contains(h, param) != tc.want {
			t.Errorf("%s: %d %q; want %d with resource_metadata %v", tc.name, rec.Code, h, tc.status, tc.want)
		}
		if h != "" {
			if err := parseChallenge(h); err != nil {
				t.Errorf("%s: challenge %q does not parse: %v", tc.name, h, err)
			}
		}
	}

	for _, bad := range []string{"https://x/\"\r\nSet-Cookie: a=b", "https://x/a\\b", "/relative", "ftp://x/y", "https://x/ünï"} {
		if _, err := middleware.New(s.client, project, middleware.WithResourceMetadata(bad)); err == nil {
			t.Errorf("WithResourceMetadata(%q): New err = nil, want an error", bad)
		}
	}
}

// A caller that hangs up is answered 503 without a log line about the
// server, which did nothing wrong.
func TestCallerHangUpIsNotLoggedAsAnOutage(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{})
	release := make(chan struct{})
	defer close(release)
	s.as.SetFault(func(http.ResponseWriter) bool { <-release; return false })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, "/api", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("caller gone: %d, want 503", rec.Code)
	}
	if logs := s.logs.String(); strings.Contains(logs, "unavailable") {
		t.Errorf("a caller hanging up was logged as an outage: %s", logs)
	}
}

// A redirect from the introspection endpoint is a configuration problem:
// 503 for the caller, an Error line for the operator.
func TestRedirectIsLoggedAsAConfigurationProblem(t *testing.T) {
	t.Parallel()
	s := newStack(t, project)
	tok := s.mint(fakeas.Token{})
	s.as.SetFault(func(w http.ResponseWriter) bool {
		w.Header().Set("Location", "https://elsewhere.example/introspect")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return true
	})
	if rec := s.do("/api", "Bearer "+tok); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("redirect: %d, want 503", rec.Code)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "configuration problem") {
		t.Errorf("redirect not logged as a configuration problem at Error: %s", logs)
	}
}

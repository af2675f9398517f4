package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The baselines of the load benchmark: what a ZITADEL user gets without
// tokenguard. Both follow zitadel-go's HTTP middleware
// (pkg/http/middleware.Interceptor.RequireAuthorization): the Authorization
// header's value after "Bearer ", trimmed; the verifier's result; and, once
// authorized, that result in the request's context for the handler
// (context.WithValue and Request.WithContext). Both use zitadel/oidc's
// resource server client (rs), which signs a fresh client assertion for
// every call, as ZITADEL's Go SDK does.

// authCtxKey is the context key of the baselines' authorization context.
type authCtxKey struct{}

// authorizedPong reads the caller's identity from the authorization context
// before next, as a real handler does, and fails with 500 without one.
func authorizedPong(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if resp, ok := r.Context().Value(authCtxKey{}).(*oidc.IntrospectionResponse); !ok || resp.Subject == "" {
			http.Error(w, "no authorization context", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveAuthorized hands r to next with resp in its context, as zitadel-go's
// middleware does with its authorization context.
func serveAuthorized(next http.Handler, w http.ResponseWriter, r *http.Request, resp *oidc.IntrospectionResponse) {
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authCtxKey{}, resp)))
}

// sdkBaseline introspects on every request, as ZITADEL's SDK middleware does
// by default.
func sdkBaseline(server rs.ResourceServer, projectID string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		resp, err := rs.Introspect[*oidc.IntrospectionResponse](r.Context(), server, token)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if !resp.Active || !slices.Contains(resp.Audience, projectID) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		serveAuthorized(next, w, r, resp)
	})
}

// goCacheBaseline is the best a ZITADEL user assembles today: the same
// introspection behind a go-cache style map keyed by the raw token, one fixed
// TTL for all entries, inactive results cached too, and no coalescing of
// concurrent misses.
type goCacheBaseline struct {
	server    rs.ResourceServer
	projectID string
	ttl       time.Duration

	mu    sync.RWMutex // guards items
	items map[string]goCacheItem
}

type goCacheItem struct {
	resp    *oidc.IntrospectionResponse
	expires int64
}

func newGoCacheBaseline(server rs.ResourceServer, projectID string) *goCacheBaseline {
	return &goCacheBaseline{server: server, projectID: projectID, ttl: 60 * time.Second, items: map[string]goCacheItem{}}
}

func (g *goCacheBaseline) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		now := time.Now().UnixNano()
		g.mu.RLock()
		item, found := g.items[token]
		g.mu.RUnlock()
		if !found || now >= item.expires {
			resp, err := rs.Introspect[*oidc.IntrospectionResponse](r.Context(), g.server, token)
			if err != nil {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			item = goCacheItem{resp: resp, expires: now + int64(g.ttl)}
			g.mu.Lock()
			g.items[token] = item
			g.mu.Unlock()
		}
		if !item.resp.Active || !slices.Contains(item.resp.Audience, g.projectID) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		serveAuthorized(next, w, r, item.resp)
	})
}

// bearer reads the token as zitadel-go does: the header's value after
// "Bearer ", with surrounding space trimmed.
func bearer(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("authorization"), oidc.BearerToken)
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

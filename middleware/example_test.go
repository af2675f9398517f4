package middleware_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

func Example() {
	as := fakeas.Start() // stands in for ZITADEL
	defer as.Close()
	keyJSON, _ := as.NewApp("123")

	key, _ := clientauth.ParseKey(keyJSON)
	auth, _ := key.PrivateKeyJWT(as.Issuer)
	client, _ := introspect.New(as.Issuer+fakeas.IntrospectPath, auth)
	mw, err := middleware.New(client, "123", middleware.WithProjectID("123"))
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/api/admin", mw.Require(middleware.Role("admin"))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			claims, _ := middleware.ClaimsFromContext(r.Context())
			fmt.Fprintf(w, "hello %s", claims.Subject)
		})))

	for _, roles := range []map[string]map[string]string{{"admin": {"org": "acme"}}, nil} {
		token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"}, Roles: roles})
		req := httptest.NewRequest("GET", "/api/admin", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	// Output:
	// 200 hello alice
	// 403 {"error":"insufficient_scope","error_description":"requires project role \"admin\""}
}

func ExampleNewContext() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		claims, ok := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintln(w, claims.Subject, ok, claims.Roles.Has("admin"), claims.HasScope("write"))
	}
	// Test a handler without a middleware or an authorization server.
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(middleware.NewContext(req.Context(), &middleware.Claims{Subject: "alice",
		Roles: introspect.NewRoles(introspect.RoleGrant{Role: "admin", OrgID: "org-1"})}))
	rec := httptest.NewRecorder()
	handler(rec, req)

	// For scopes and other claims, decode what the server would answer.
	resp, _ := introspect.Decode([]byte(`{"active":true,"sub":"bob","scope":"read write"}`))
	req = req.WithContext(middleware.NewContext(req.Context(), middleware.NewClaims(resp, "")))
	handler(rec, req)
	fmt.Print(rec.Body.String())
	// Output:
	// alice true true false
	// bob true false true
}

// newExampleGuard starts a fake authorization server and returns it with a
// middleware for project 123 and its introspection client.
func newExampleGuard(opts ...middleware.Option) (*fakeas.Server, *introspect.Client, *middleware.Middleware) {
	as := fakeas.Start()
	keyJSON, _ := as.NewApp("123")
	key, _ := clientauth.ParseKey(keyJSON)
	auth, _ := key.PrivateKeyJWT(as.Issuer)
	client, _ := introspect.New(as.Issuer+fakeas.IntrospectPath, auth)
	mw, err := middleware.New(client, "123", append([]middleware.Option{middleware.WithProjectID("123")}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return as, client, mw
}

// A route compares the claims with the request: the {org} path parameter
// must be the caller's organization.
func ExampleMatchRequest() {
	as, _, mw := newExampleGuard()
	defer as.Close()

	sameOrg := middleware.MatchRequest(func(r *http.Request, c *middleware.Claims) error {
		if r.PathValue("org") != c.OrgID {
			return errors.New("another organization") // 403; the text stays here
		}
		return nil
	})
	invoices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "invoices of ", r.PathValue("org"))
	})
	mux := http.NewServeMux()
	mux.Handle("GET /orgs/{org}/invoices", mw.Require(sameOrg)(invoices))

	token := as.Mint(fakeas.Token{Subject: "alice", OrgID: "acme", Audience: []string{"123"}})
	for _, path := range []string{"/orgs/acme/invoices", "/orgs/umbrella/invoices"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	// Output:
	// 200 invoices of acme
	// 403 {"error":"insufficient_scope","error_description":"token lacks a required permission"}
}

// A guard-wide validator refuses tokens of clients not on an allow-list, on
// every route.
func ExampleWithValidator() {
	allowed := map[string]bool{"web-app": true}
	as, _, mw := newExampleGuard(middleware.WithValidator(func(ctx context.Context, c *middleware.Claims) error {
		if !allowed[c.ClientID] {
			return errors.New("client not allowed")
		}
		return nil
	}))
	defer as.Close()

	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	for _, client := range []string{"web-app", "scraper"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+as.Mint(fakeas.Token{Subject: "alice", ClientID: client, Audience: []string{"123"}}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(client, rec.Code)
	}
	// Output:
	// web-app 200
	// scraper 401
}

// Check decides for a token from any transport; here, a message queue's
// header that carries an Authorization value.
func ExampleMiddleware_Check() {
	as, _, mw := newExampleGuard()
	defer as.Close()
	token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"},
		Roles: map[string]map[string]string{"writer": {"acme": "acme.example"}}})

	headers := map[string][]string{"authorization": {"Bearer " + token}}
	tok, e := middleware.ParseAuthorization(headers["authorization"])
	if e != nil {
		fmt.Println("refused:", e.StatusCode, e.Description)
		return
	}
	ctx, e := mw.Check(context.Background(), tok, middleware.Role("writer"))
	if e != nil {
		fmt.Println("refused:", e.StatusCode, e.Description)
		return
	}
	claims, _ := middleware.ClaimsFromContext(ctx)
	fmt.Println("accepted:", claims.Subject, claims.Roles.Names())

	_, e = middleware.ParseAuthorization(nil)
	fmt.Println("no header:", e.StatusCode, errors.Is(e, middleware.ErrNoToken))
	// Output:
	// accepted: alice [writer]
	// no header: 401 true
}

// Browsers' EventSource cannot set headers: the streaming routes get a
// second middleware, on the same client (and cache), that also reads the
// access_token query parameter.
func ExampleWithTokenSource() {
	as, client, mw := newExampleGuard()
	defer as.Close()
	streams, err := middleware.New(client, "123", middleware.WithProjectID("123"),
		middleware.WithTokenSource(middleware.FromAuthorization(), middleware.FromQuery()))
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })
	mux := http.NewServeMux()
	mux.Handle("/api/", mw.Wrap(hello))
	mux.Handle("/events", streams.Stream()(hello))

	token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"}})
	for _, url := range []string{"/api/me?access_token=" + token, "/events?access_token=" + token} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
		fmt.Println(url[:strings.Index(url, "?")], rec.Code, rec.Header().Get("Cache-Control"))
	}
	// Output:
	// /api/me 401 no-store
	// /events 200 private
}

// A Server-Sent Events stream ends as soon as its user is invalidated, here
// by a call to InvalidateSubject (a ZITADEL event webhook or another
// replica does the same).
func ExampleMiddleware_Stream() {
	as, client, mw := newExampleGuard()
	defer as.Close()
	ended := make(chan error, 1)
	events := mw.Stream()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: hello\n\n")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done() // wait for events, until the context ends
		ended <- context.Cause(r.Context())
	}))
	srv := httptest.NewServer(events)
	defer srv.Close()

	token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"}})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	fmt.Print(line)

	client.InvalidateSubject("alice") // the user was locked
	err = <-ended
	fmt.Println(errors.Is(err, middleware.ErrRevoked), err.(*middleware.Error).StatusCode)
	// Output:
	// data: hello
	// true 401
}

package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

func runInspect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenguard inspect", flag.ContinueOnError)
	sf := addServerFlags(fs)
	var roles listFlag
	fs.Var(&roles, "role", "project role the route requires; repeatable")
	asJSON := fs.Bool("json", false, "also print the introspection response as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if err := sf.required(); err != nil {
		return err
	}
	token, err := readToken(fs.Args(), stdin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	guard, err := tokenguard.New(ctx, sf.config(),
		middleware.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		if errors.Is(err, introspect.ErrUnavailable) {
			return fail(exitUnavailable, "%v", err)
		}
		return fail(exitConfig, "%v", err)
	}
	var reqs []middleware.Requirement
	for _, r := range roles {
		reqs = append(reqs, middleware.Role(r))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	authCtx, authErr := guard.Authenticate(req, reqs...)
	claims, _ := middleware.ClaimsFromContext(authCtx)
	resp, _ := guard.Client().Introspect(ctx, token) // cached by Authenticate: no second call

	var b strings.Builder
	defer func() { _, _ = io.WriteString(stdout, b.String()) }()
	if authErr == nil {
		fmt.Fprintf(&b, "ACCEPTED: the API would serve this token (200).\n")
		describe(&b, resp, *sf.projectID)
		fmt.Fprintf(&b, "  roles:     %s\n", orNone(claims.Roles.Names()))
		printJSON(&b, resp, *asJSON)
		return nil
	}
	var e *middleware.Error
	if !errors.As(authErr, &e) {
		return fail(exitConfig, "%v", authErr)
	}
	switch e.StatusCode {
	case http.StatusServiceUnavailable:
		return fail(exitUnavailable, "the authorization server is unavailable: %v", errors.Unwrap(e.Err))
	case http.StatusInternalServerError:
		return fail(exitConfig, "the authorization server rejected this API's credentials; check -key-file (the API application's key) and -issuer: %v", errors.Unwrap(e.Err))
	}
	fmt.Fprintf(&b, "REFUSED: the API would answer %d %s.\n", e.StatusCode, e.Code)
	fmt.Fprintf(&b, "  reason:    %s\n", e.Description)
	if resp != nil {
		describe(&b, resp, *sf.projectID)
		fmt.Fprintf(&b, "  roles:     %s\n", orNone(resp.RolesFor(*sf.projectID).Names()))
	}
	explain(&b, e, token, *sf.issuer, *sf.projectID)
	printJSON(&b, resp, *asJSON && resp != nil)
	return &exitError{code: exitRefused, err: errors.New("")}
}

func readToken(args []string, stdin io.Reader) (string, error) {
	switch len(args) {
	case 0:
		line, err := bufio.NewReader(io.LimitReader(stdin, middleware.MaxTokenSize+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fail(exitUsage, "reading the token from standard input: %v", err)
		}
		if line = strings.TrimSpace(line); line != "" {
			return line, nil
		}
		return "", fail(exitUsage, "no token: pass it as the argument or on standard input")
	case 1:
		return strings.TrimSpace(strings.TrimPrefix(args[0], "Bearer ")), nil
	}
	return "", fail(exitUsage, "inspect takes one token, got %d arguments", len(args))
}

func describe(b *strings.Builder, r *introspect.Response, projectID string) {
	if r == nil {
		return
	}
	fmt.Fprintf(b, "  subject:   %s", r.Subject)
	if r.Username != "" {
		fmt.Fprintf(b, " (%s)", r.Username)
	}
	fmt.Fprintf(b, "\n  client:    %s\n", r.ClientID)
	has := "does not contain"
	if r.HasAudience(projectID) {
		has = "contains"
	}
	fmt.Fprintf(b, "  audience:  %s (%s project %s)\n", orNone(r.Audience()), has, projectID)
	if exp := r.Expiration.AsTime(); !exp.IsZero() {
		fmt.Fprintf(b, "  expires:   %s (in %s)\n", exp.UTC().Format(time.RFC3339), time.Until(exp).Round(time.Second))
	}
	fmt.Fprintf(b, "  scopes:    %s\n", orNone(r.Scopes()))
}

// explain says what to change, above all the missing audience scope.
func explain(b *strings.Builder, e *middleware.Error, token, issuer, projectID string) {
	scope := clientauth.ProjectAudienceScope(projectID)
	switch {
	case errors.Is(e, middleware.ErrInactive):
		fmt.Fprintf(b, "\nThe authorization server says the token is not active for this API. Likely causes:\n")
		if c := jwtClaims(token); c != nil {
			aud, _ := json.Marshal(c["aud"])
			fmt.Fprintf(b, "  (the token is a JWT: iss %v, aud %s, exp %v)\n", c["iss"], aud, c["exp"])
			if iss, _ := c["iss"].(string); iss != "" && iss != issuer {
				fmt.Fprintf(b, "  - it was issued by %s, not by %s: use a token from this issuer\n", iss, issuer)
			}
		}
		fmt.Fprintf(b, "  - it was requested without the project audience scope: request scope %s\n", scope)
		fmt.Fprintf(b, "    (tokenguard token -project-id %s adds it; with curl add it to the scope parameter)\n", projectID)
		fmt.Fprintf(b, "  - it expired or was revoked: get a new token\n")
	case errors.Is(e, middleware.ErrAudience):
		fmt.Fprintf(b, "\nThe token is active but not for this API: request scope %s\n", scope)
	case errors.Is(e, middleware.ErrExpired):
		fmt.Fprintf(b, "\nThe token has expired: get a new one.\n")
	case errors.Is(e, middleware.ErrNotYetValid):
		fmt.Fprintf(b, "\nThe token is not valid yet: check the clocks of this machine and the server.\n")
	case errors.Is(e, middleware.ErrForbidden):
		fmt.Fprintf(b, "\nThe token is valid but lacks a role the route requires: grant it to the user in project %s.\n", projectID)
	case errors.Is(e, middleware.ErrMalformed):
		fmt.Fprintf(b, "\nThat is not a bearer token: pass the access_token value only.\n")
	}
}

// jwtClaims decodes a JWT's payload without verifying it, for explanations
// only; nil when the token is not a JWT.
func jwtClaims(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return nil
	}
	return c
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "(none)"
	}
	return strings.Join(ss, ", ")
}

func printJSON(b *strings.Builder, r *introspect.Response, on bool) {
	if !on {
		return
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		fmt.Fprintf(b, "\n%s\n", data)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/loopback"
	"github.com/tokenguard/tokenguard/introspect"
)

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenguard token", flag.ContinueOnError)
	issuer := fs.String("issuer", "", "issuer URL, exactly as discovered")
	keyFile := fs.String("key-file", "", "the service user's key JSON (type serviceaccount)")
	var projects, scopes listFlag
	fs.Var(&projects, "project-id", "project (API) the token is for; repeat or comma-separate for several")
	fs.Var(&scopes, "scope", "extra scope; repeatable")
	asJSON := fs.Bool("json", false, "print the whole token response as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	in := addInternalFlags(fs)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "token takes no arguments, got %q", fs.Args())
	}
	if err := required(map[string]string{"issuer": *issuer, "key-file": *keyFile, "project-id": projects.String()}); err != nil {
		return err
	}
	if err := checkTokenIssuer(*issuer, *in.allowHTTP); err != nil {
		return err
	}
	// The client JWTBearer would make (30 s timeout, http.DefaultTransport),
	// with the issuer's requests mapped onto -internal-url.
	hc, err := in.client(&http.Client{Timeout: 30 * time.Second}, *issuer, "the service user's signed assertion and gets back an access token")
	if err != nil {
		return err
	}
	key, err := clientauth.LoadKey(*keyFile)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	jb := &clientauth.JWTBearer{Key: key, Issuer: *issuer, ProjectIDs: projects, Scopes: scopes, HTTPClient: hc}
	tok, err := jb.Token(ctx)
	if err != nil {
		return tokenError(err)
	}
	if !*asJSON {
		fmt.Fprintln(stdout, tok.AccessToken)
		return nil
	}
	scope, _ := tok.Extra("scope").(string)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"access_token": tok.AccessToken, "token_type": tok.TokenType, "expires_in": tok.ExpiresIn,
		"expiry": tok.Expiry.UTC().Format(time.RFC3339), "scope": scope,
	})
}

// checkTokenIssuer refuses an issuer that is not an absolute http or https
// URL, and a plain-http one on a host that is not loopback unless allowHTTP,
// as tokenguard.New refuses them for the API: the token request carries the
// service user's signed assertion and gets back an access token.
func checkTokenIssuer(issuer string, allowHTTP bool) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return fail(exitConfig, "-issuer %q is not an absolute http or https URL", issuer)
	case u.Scheme == "http" && !allowHTTP && !loopback.Host(u.Hostname()):
		return fail(exitConfig, "-issuer %q uses plain http on a host that is not loopback, and the token request carries the service user's signed assertion and gets back an access token: use https, or pass -insecure-allow-http for a trusted network", u.Redacted())
	}
	return nil
}

// tokenError explains a failed token request in one line, with the exit
// status that fits it.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := exitConfig
		if re.Response != nil && re.Response.StatusCode >= 500 {
			code = exitUnavailable
		}
		msg := "token endpoint refused: " + re.ErrorCode
		if re.ErrorCode == "" && re.Response != nil {
			msg = "token endpoint answered " + re.Response.Status
		}
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		return fail(code, "%s", msg)
	}
	if isNetwork(err) {
		return fail(exitUnavailable, "%v", err)
	}
	return fail(exitConfig, "%v", err)
}

// isNetwork reports errors that say the server could not be reached.
func isNetwork(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.Is(err, introspect.ErrUnavailable) || errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, context.DeadlineExceeded)
}

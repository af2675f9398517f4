package main

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/internalurl"
)

// listFlag collects a repeatable flag; each value may also be a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parse parses args into fs and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK, err: errors.New("")}
		}
		return &exitError{code: exitUsage, err: errors.New("")} // flag already printed the problem
	}
	return nil
}

// required reports missing flags as a usage error.
func required(flags map[string]string) error {
	var missing []string
	for _, name := range []string{"issuer", "key-file", "project-id"} {
		if v, ok := flags[name]; ok && v == "" {
			missing = append(missing, "-"+name)
		}
	}
	if len(missing) > 0 {
		return fail(exitUsage, "missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// serverFlags are the flags of the commands that act as the API does
// (doctor, inspect): which server, which key, which project, and how to
// reach the server.
type serverFlags struct {
	issuer, keyFile, projectID *string
	internalFlags
}

func addServerFlags(fs *flag.FlagSet) serverFlags {
	return serverFlags{
		issuer:        fs.String("issuer", "", "issuer URL, exactly as discovered"),
		keyFile:       fs.String("key-file", "", "the API application's key JSON (type application)"),
		projectID:     fs.String("project-id", "", "the API's project ID"),
		internalFlags: addInternalFlags(fs),
	}
}

// internalFlags say how to reach the server when its public name does not
// lead to it (inside a cluster): doctor, inspect and token take them.
type internalFlags struct {
	internalURL, serverName *string
	allowHTTP               *bool
}

func addInternalFlags(fs *flag.FlagSet) internalFlags {
	return internalFlags{
		internalURL: fs.String("internal-url", "", "reach the server at this address, with Host set to the issuer's (e.g. http://zitadel.zitadel.svc.cluster.local:8080)"),
		serverName:  fs.String("internal-tls-server-name", "", "verify an https -internal-url's certificate for this name (default: the issuer's host)"),
		allowHTTP:   fs.Bool("insecure-allow-http", false, "allow plain http to a host that is not loopback"),
	}
}

// client returns base, or with -internal-url a copy of it whose requests
// for issuer go to the internal address. Bad flag values are a
// configuration error (exit 3, as doctor and inspect report them), named
// by their flags.
func (f internalFlags) client(base *http.Client, issuer, sent string) (*http.Client, error) {
	hc, err := internalurl.Client(base, internalurl.Options{
		Issuer: issuer, URL: *f.internalURL, TLSServerName: *f.serverName, AllowHTTP: *f.allowHTTP,
		Names: internalurl.Names{Prefix: "tokenguard", URL: "-internal-url", TLSServerName: "-internal-tls-server-name",
			AllowHTTP: "pass -insecure-allow-http", Sent: sent},
	})
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	return hc, nil
}

// required reports the missing ones of -issuer, -key-file and -project-id.
func (f serverFlags) required() error {
	return required(map[string]string{"issuer": *f.issuer, "key-file": *f.keyFile, "project-id": *f.projectID})
}

// config is the guard's configuration the flags describe.
func (f serverFlags) config() tokenguard.Config {
	return tokenguard.Config{Issuer: *f.issuer, KeyFile: *f.keyFile, ProjectID: *f.projectID,
		InternalURL: *f.internalURL, InternalTLSServerName: *f.serverName, InsecureAllowHTTP: *f.allowHTTP}
}

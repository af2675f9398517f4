package exampletest

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
)

// RunFunc is an example's run function: main without the process.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// output collects a program's stdout and reports the address once a line
// matches its listening pattern.
type output struct {
	listening *regexp.Regexp
	addr      chan string // receives the address once

	mu   sync.Mutex // guards b and sent
	b    strings.Builder
	sent bool
}

// Listening matches the line the HTTP examples print when they listen; its
// group is their base URL.
var Listening = regexp.MustCompile(`API listening on (http://\S+)`)

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	if m := o.listening.FindStringSubmatch(o.b.String()); m != nil && !o.sent {
		o.addr <- m[1]
		o.sent = true
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Running is an example started by [Start].
type Running struct {
	Addr string // the first group of the listening pattern
	out  *output
	stop func() error
}

// String returns what the program has printed to stdout so far.
func (p *Running) String() string { return p.out.String() }

// Stop cancels the program's context and returns run's result; the test's
// cleanup calls it too, and fails the test unless run returned nil.
func (p *Running) Stop() error { return p.stop() }

// Start runs run with args and the environment env until Stop or the end of
// the test, and returns once its stdout has a line that listening matches.
func Start(t *testing.T, run RunFunc, args []string, env map[string]string, listening *regexp.Regexp) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Running{out: &output{listening: listening, addr: make(chan string, 1)}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, p.out, io.Discard) }()
	var once sync.Once
	var runErr error
	p.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("run() after cancel = %v, want a clean shutdown", err)
		}
	})
	select {
	case p.Addr = <-p.out.addr:
		return p
	case err := <-done:
		done <- err
		t.Fatalf("run() = %v before listening; output:\n%s", err, p.out)
	case <-time.After(60 * time.Second):
		t.Fatalf("run() did not start listening; output:\n%s", p.out)
	}
	return nil
}

// start is Start for an HTTP example: its base URL and its output.
func start(t *testing.T, run RunFunc, args []string, env map[string]string) (string, *output) {
	t.Helper()
	p := Start(t, run, args, env, Listening)
	return p.Addr, p.out
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Program checks the program as its users drive it: configured by env vars
// or flags, and out of the box with nothing configured.
func Program(t *testing.T, run RunFunc) {
	t.Run("configured by env", func(t *testing.T) {
		s := NewStack(t)
		env := map[string]string{"ISSUER": s.Config.Issuer, "KEY_FILE": s.Config.KeyFile, "PROJECT_ID": s.Config.ProjectID, "ADDR": "127.0.0.1:0"}
		base, _ := start(t, run, nil, env)
		tok := s.AS.Mint(fakeas.Token{Subject: "u", Audience: []string{ProjectID}})
		if code, body := get(t, base+"/api/ping", tok); code != 200 || body != "pong" {
			t.Errorf("GET /api/ping = %d %q, want 200 pong", code, body)
		}
	})
	t.Run("configured by flags", func(t *testing.T) {
		s := NewStack(t)
		args := []string{"-issuer", s.Config.Issuer, "-key-file", s.Config.KeyFile, "-project-id", s.Config.ProjectID, "-addr", "127.0.0.1:0"}
		base, _ := start(t, run, args, map[string]string{"ISSUER": "http://127.0.0.1:1"}) // flags win over env
		if code, _ := get(t, base+"/api/me", s.AS.Mint(fakeas.Token{Subject: "u", Audience: []string{ProjectID}})); code != 200 {
			t.Errorf("GET /api/me = %d, want 200", code)
		}
	})
	t.Run("out of the box", func(t *testing.T) {
		base, out := start(t, run, nil, map[string]string{"ADDR": "127.0.0.1:0"})
		curls := regexp.MustCompile(`curl -i (?:-H 'Authorization: Bearer (\S+)' )?(http://\S+)`).FindAllStringSubmatch(out.String(), -1)
		want := []struct {
			path string
			code int
		}{{"/ping", 200}, {"/api/me", 401}, {"/api/me", 200}, {"/api/admin", 200}, {"/api/admin", 403}}
		if len(curls) != len(want) {
			t.Fatalf("printed %d curl lines, want %d:\n%s", len(curls), len(want), out)
		}
		for i, c := range curls {
			if !strings.HasPrefix(c[2], base) || !strings.HasSuffix(c[2], want[i].path) {
				t.Errorf("curl line %d targets %s, want %s%s", i, c[2], base, want[i].path)
			}
			if code, body := get(t, c[2], c[1]); code != want[i].code {
				t.Errorf("curl line %d (%s): %d %s, want %d", i, want[i].path, code, body, want[i].code)
			}
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		key := NewStack(t).Config.KeyFile
		tests := []struct {
			name   string
			args   []string
			env    map[string]string
			wantIn string
		}{
			{"issuer without key", nil, map[string]string{"ISSUER": "http://127.0.0.1:1"}, "KEY_FILE (-key-file) and PROJECT_ID (-project-id)"},
			{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
			{"extra argument", []string{"serve"}, nil, "unexpected arguments"},
			{"missing key file", []string{"-issuer", "http://127.0.0.1:1", "-key-file", "/nonexistent.json", "-project-id", "1"}, nil, "/nonexistent.json"},
			{"unreachable issuer", nil, map[string]string{"ISSUER": "http://127.0.0.1:1", "KEY_FILE": key, "PROJECT_ID": "1"}, "unavailable"},
			{"address in use", []string{"-addr", "256.0.0.1:0"}, nil, "listen"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
				if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
					t.Errorf("run() err = %v, want it to mention %q", err, tt.wantIn)
				}
			})
		}
	})
	metadataAndInternalURL(t, run) // metadata.go
}

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
		return newRouter(guard.Middleware)
	})
}

// TestRunWithEnv drives the program as a user would: configuration from the
// environment, a real listener, a real request.
func TestRunWithEnv(t *testing.T) {
	s := exampletest.NewStack(t)
	env := map[string]string{"ISSUER": s.Config.Issuer, "KEY_FILE": s.Config.KeyFile, "PROJECT_ID": s.Config.ProjectID, "ADDR": "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &syncWriter{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, stdout, io.Discard) }()
	var addr string
	select {
	case addr = <-stdout.addr:
	case err := <-done:
		t.Fatalf("run() = %v before listening", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run() did not start listening")
	}
	tok := s.AS.Mint(fakeas.Token{Subject: "u", Audience: []string{exampletest.ProjectID}})
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/ping", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "pong" {
		t.Errorf("GET /api/ping = %d %q, want 200 pong", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run() after cancel = %v, want a clean shutdown", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		wantIn string
	}{
		{"issuer without key", nil, map[string]string{"ISSUER": "http://127.0.0.1:1"}, "KEY_FILE (-key-file) and PROJECT_ID (-project-id)"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"missing key file", []string{"-issuer", "http://127.0.0.1:1", "-key-file", "/nonexistent.json", "-project-id", "1"}, nil, "/nonexistent.json"},
		{"unreachable issuer", nil, map[string]string{"ISSUER": "http://127.0.0.1:1", "KEY_FILE": "KEY", "PROJECT_ID": "1"}, "unavailable"},
	}
	key := exampletest.NewStack(t).Config.KeyFile
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env["KEY_FILE"] == "KEY" {
				tt.env["KEY_FILE"] = key
			}
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("run() err = %v, want it to mention %q", err, tt.wantIn)
			}
		})
	}
}

type syncWriter struct {
	buf  bytes.Buffer
	addr chan string
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if i := strings.Index(string(p), "http://"); i >= 0 && strings.Contains(string(p), "listening") {
		w.addr <- strings.TrimSpace(string(p[i+len("http://"):]))
	}
	return len(p), nil
}

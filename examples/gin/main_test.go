package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/examples/internal/exampletest"
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

func TestRunRejectsBadConfig(t *testing.T) {
	env := map[string]string{"ISSUER": "http://127.0.0.1:1"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "KEY_FILE") {
		t.Errorf("run() err = %v, want it to ask for KEY_FILE", err)
	}
}

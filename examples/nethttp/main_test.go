package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokenguard/tokenguard"
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

func TestEvents(t *testing.T) {
	exampletest.Events(t, func(t *testing.T, guard *tokenguard.Guard) http.Handler { return newRouter(guard.Middleware) })
}

func TestProgram(t *testing.T) { exampletest.Program(t, run) }

func TestLocalJWT(t *testing.T) {
	exampletest.LocalJWT(t, run, func(t *testing.T, guard *tokenguard.Guard) http.Handler { return newRouter(guard.Middleware) })
}

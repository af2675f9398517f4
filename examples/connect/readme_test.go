package main

import (
	"testing"

	"github.com/tokenguard/tokenguard/internal/readmesnippet"
)

// TestREADMESnippet checks that the Go block README.md marks with
// <!-- snippet: examples/connect/auth.go --> is a run of lines of auth.go
// (indentation aside), so that the README's code compiles and stays
// current.
func TestREADMESnippet(t *testing.T) {
	readmesnippet.Check(t, "../../README.md", "examples/connect/auth.go", "auth.go")
}

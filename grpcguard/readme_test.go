package grpcguard_test

import (
	"testing"

	"github.com/tokenguard/tokenguard/internal/readmesnippet"
)

// TestREADMESnippet checks that the Go block README.md marks with
// <!-- snippet: grpcguard/example_test.go --> is a run of lines of
// example_test.go (indentation aside), so that the README's code compiles
// and stays current.
func TestREADMESnippet(t *testing.T) {
	readmesnippet.Check(t, "../README.md", "grpcguard/example_test.go", "example_test.go")
}

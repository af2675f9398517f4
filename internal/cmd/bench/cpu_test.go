package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the program when the CPU runs
// re-execute it as the authorization server's process.
func TestMain(m *testing.M) {
	if code, err := asOnlyMain(); err == nil {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

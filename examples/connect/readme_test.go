package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMESnippet checks that the Go block README.md marks with
// <!-- snippet: examples/connect/auth.go --> is a run of lines of auth.go
// (indentation aside), so that the README's code compiles and stays
// current.
func TestREADMESnippet(t *testing.T) {
	checkSnippets(t, "../../README.md", "examples/connect/auth.go", "auth.go")
}

func checkSnippets(t *testing.T, readmePath, marker, sourcePath string) {
	t.Helper()
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(sourcePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)<!-- snippet: "+regexp.QuoteMeta(marker)+" -->\n```go\n(.*?)\n```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatalf("README has no snippet of %s", marker)
	}
	lines := trimmed(string(src))
	for _, b := range blocks {
		want := trimmed(string(b[1]))
		found := false
		for i := 0; i+len(want) <= len(lines) && !found; i++ {
			found = slices.Equal(lines[i:i+len(want)], want)
		}
		if !found {
			t.Errorf("README snippet of %s is not in %s:\n%s", marker, sourcePath, b[1])
		}
	}
}

func trimmed(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		out = append(out, strings.TrimLeft(l, "\t"))
	}
	return out
}

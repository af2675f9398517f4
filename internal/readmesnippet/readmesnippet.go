// Package readmesnippet checks that README.md's Go snippets are copies of
// code that compiles: a block marked <!-- snippet: PATH --> must be a run of
// lines of the file PATH (indentation aside), so that the README's code
// compiles and stays current. Tests of the modules whose code the README
// shows call Check.
package readmesnippet

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Check fails t unless README.md at readmePath has at least one Go block
// marked <!-- snippet: marker --> and each such block is a run of lines of
// the file at sourcePath.
func Check(t testing.TB, readmePath, marker, sourcePath string) {
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

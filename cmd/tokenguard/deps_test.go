package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNoBenchmarkCode pins that the user-facing CLI stays free of
// the maintainers' load benchmark (internal/cmd/bench): every go install of
// the CLI would otherwise link these packages.
func TestCLILinksNoBenchmarkCode(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	for _, p := range []string{"testing", "runtime/pprof", "net/http/httptest", "github.com/zitadel/oidc/v3/pkg/client/rs"} {
		if deps[p] {
			t.Errorf("cmd/tokenguard links %s", p)
		}
	}
	if !deps["github.com/tokenguard/tokenguard/devserver"] {
		t.Errorf("go list -deps output lacks devserver, which tokenguard dev needs: %.200s", out)
	}
}

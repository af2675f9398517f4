package middleware

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tokenguard/tokenguard/introspect"
)

// TestConfigSharesDecodedStrings checks that the audience and project ID a
// Middleware compares on every request are the same copies that decoded
// responses hold, so that the comparisons match by pointer.
func TestConfigSharesDecodedStrings(t *testing.T) {
	t.Parallel()
	m, err := New(&introspect.Client{}, strings.Clone("p1"), WithProjectID(strings.Clone("42")))
	if err != nil {
		t.Fatal(err)
	}
	r, err := introspect.Decode([]byte(`{"active":true,"aud":["p1"],"urn:zitadel:iam:org:project:42:roles":{"a":{"o":"d"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(m.cfg.audiences[0]) != unsafe.StringData(r.Audience()[0]) {
		t.Error("the configured audience and the decoded aud are two copies, want one")
	}
	var projectID string
	for id := range r.ProjectRoles() {
		projectID = id
	}
	if unsafe.StringData(m.cfg.projectID) != unsafe.StringData(projectID) {
		t.Error("the configured project ID and the decoded one are two copies, want one")
	}
}

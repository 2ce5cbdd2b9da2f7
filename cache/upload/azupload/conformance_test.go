package azupload_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/conformancetest"
)

// repoRoot is the nearest directory above the working one holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("repository root not found")
		}
	}
}

// The OCI distribution-spec conformance suite (push, pull, discovery and
// management, the spec's development defaults) against one replica on
// the azure driver: content in azstore, the index in azmeta, upload
// sessions in azupload, all on Azurite. Every test passes, none skipped.
func testConformance(t *testing.T, srv *azuritetest.Server) {
	root := repoRoot(t)
	bin := conformancetest.Binary(t, root)
	c := newCluster(t, srv, 1, upload.Limits{})
	out := filepath.Join(root, ".ci", "out", "conformance", "azure")
	r, runErr := conformancetest.Run(t, bin, strings.TrimPrefix(c.nodes[0].url, "http://"), out)
	t.Logf("OCI conformance on the azure driver: %s; reports in %s", r.Line, out)
	if runErr != nil || r.Failed() || r.N["Skip"] != 0 || r.N["Disabled"] != 0 {
		t.Fatalf("conformance failed (%v): %s\n%s", runErr, r.Line, r.Stderr)
	}
	if calls := c.up.Total(); calls != 0 {
		t.Fatalf("the suite's pushes and pulls made %d upstream calls", calls)
	}
}

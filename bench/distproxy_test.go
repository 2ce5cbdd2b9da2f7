package bench

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestDistproxyDir finds the distribution target's module from anywhere in
// the source tree, and says so when outside it.
func TestDistproxyDir(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "bench", "cmd", "distproxy")
	for _, from := range []string{".", root, want, filepath.Join(root, "cmd", "airlock")} {
		got, err := DistproxyDir("", t.TempDir(), from)
		if err != nil || got != want {
			t.Errorf("from %s: %q, %v; want %q", from, got, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(want, "go.mod")); err != nil || !filepath.IsAbs(want) || len(b) == 0 {
		t.Fatalf("go.mod of the module: %v", err)
	}
	if _, err := DistproxyDir(t.TempDir()); !errors.Is(err, ErrNoDistproxySource) {
		t.Fatalf("outside the tree: %v", err)
	}
}

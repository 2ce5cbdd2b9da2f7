package mar

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencies keeps the emulator self-contained: its packages import
// nothing of airlock outside upstream/mar (the cache must be testable against
// it without cycles) but deploy/aks, the control module's table of what a
// node pulls at bootstrap (pure data, importing nothing of airlock), from
// which the catalog is generated, the name grammar (reference, rules: leaves
// that import nothing back) and the shared leaf utilities under internal/;
// and catalog and fault import no sibling.
func TestDependencies(t *testing.T) {
	t.Parallel()
	const mod = "github.com/airlock/airlock/"
	leaf := map[string]bool{"catalog": true, "fault": true}
	grammar := map[string]bool{mod + "reference": true, mod + "rules": true, mod + "deploy/aks": true}
	err := filepath.WalkDir(".", func(dir string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, mod) || grammar[imp] {
				continue
			}
			if strings.HasPrefix(imp, mod+"internal/") {
				continue // a shared leaf (cmd/airlock's dependency test checks it imports nothing of ours)
			}
			if !strings.HasPrefix(imp, mod+"upstream/mar") {
				t.Errorf("%s imports %s (outside upstream/mar)", dir, imp)
			}
			if leaf[filepath.ToSlash(dir)] {
				t.Errorf("%s imports %s", dir, imp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

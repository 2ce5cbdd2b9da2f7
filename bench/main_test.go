package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the airlock binary this test binary built, once, when
// AIRLOCK_BIN does not name one.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// airlockBinary is $AIRLOCK_BIN (make sets it to bin/airlock), or a build
// of this checkout's cmd/airlock.
func airlockBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AIRLOCK_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "airlock-bench-bin"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "airlock")
		if out, err := exec.Command("go", "build", "-o", built.path, "../cmd/airlock").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

package bench

import (
	"os"
	"testing"

	"github.com/airlock/airlock/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// built is the airlock binary the tests run: $AIRLOCK_BIN (make sets it to
// bin/airlock), or this checkout's cmd/airlock built once.
var built = &proctest.Binary{Pkg: "../cmd/airlock"}

// airlockBinary is the airlock binary's path.
func airlockBinary(t *testing.T) string { return built.Path(t) }

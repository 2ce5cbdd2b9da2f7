package server

import (
	"fmt"
	"os"
	"testing"

	"github.com/airlock/airlock/internal/azuritetest"
	"go.uber.org/goleak"
)

// Every test stops what it started: a server's listener, collector,
// control loop and index goroutines end with Serve or Close. The tests of
// several replicas share one Azurite (each on a container of its own),
// stopped, with its clients' idle connections, before the leak check.
func TestMain(m *testing.M) {
	code := azuritetest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

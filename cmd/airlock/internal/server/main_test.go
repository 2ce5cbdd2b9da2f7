package server

import (
	"os"
	"testing"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/leaktest"
)

// Every test stops what it started: a server's listener, collector,
// control loop and index goroutines end with Serve or Close. The tests of
// several replicas share one Azurite (each on a container of its own),
// stopped, with its clients' idle connections, before the leak check.
func TestMain(m *testing.M) {
	os.Exit(leaktest.Check(azuritetest.Main(m)))
}

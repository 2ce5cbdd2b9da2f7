package server

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started: a server's listener, collector,
// control loop and index goroutines end with Serve or Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package engine_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No test may leave a goroutine behind: fills, upload timers, stall
// timers and upstream connections all end with their test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

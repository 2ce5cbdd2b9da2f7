package engine_test

import (
	"testing"

	"github.com/airlock/airlock/internal/leaktest"
)

// No test may leave a goroutine behind: fills, upload timers, stall
// timers and upstream connections all end with their test.
func TestMain(m *testing.M) { leaktest.Main(m) }

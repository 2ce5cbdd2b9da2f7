package bundle_test

import (
	"testing"

	"github.com/airlock/airlock/internal/leaktest"
)

// No test leaves a goroutine behind but idle keep-alive connections of
// clients, which outlive a test briefly.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.IdleConns()...) }

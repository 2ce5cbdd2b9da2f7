package cluster

import (
	"testing"

	"github.com/airlock/airlock/internal/leaktest"
)

// Every goroutine a test starts (probes, lease renewals) ends with it;
// idle keep-alive connections of clients outlive a test briefly.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.IdleConns()...) }

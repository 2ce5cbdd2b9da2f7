package ociclient

import (
	"testing"

	"github.com/airlock/airlock/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

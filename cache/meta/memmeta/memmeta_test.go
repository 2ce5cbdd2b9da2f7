package memmeta_test

import (
	"testing"

	"github.com/airlock/airlock/cache/meta/memmeta"
	"github.com/airlock/airlock/cache/meta/metatest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSuite(t *testing.T) {
	t.Parallel()
	metatest.Run(t, func(t *testing.T) metatest.Open {
		x := memmeta.New()
		return func(t *testing.T) metatest.Index { return x }
	})
}

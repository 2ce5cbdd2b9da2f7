package memmeta_test

import (
	"testing"

	"github.com/airlock/airlock/cache/meta/memmeta"
	"github.com/airlock/airlock/cache/meta/metatest"
	"github.com/airlock/airlock/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestSuite(t *testing.T) {
	t.Parallel()
	metatest.Run(t, func(t *testing.T) metatest.Open {
		x := memmeta.New()
		return func(t *testing.T) metatest.Index { return x }
	})
}

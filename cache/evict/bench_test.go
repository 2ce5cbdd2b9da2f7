package evict_test

import (
	"strconv"
	"testing"

	"github.com/airlock/airlock/cache/evict"
	"github.com/opencontainers/go-digest"
)

// BenchmarkTouch is what access tracking adds to a warm blob GET or a
// manifest HEAD: a clock read and a map write under a mutex, no I/O.
func BenchmarkTouch(b *testing.B) {
	tr := evict.NewTracker(nil)
	ds := make([]digest.Digest, 1024)
	for i := range ds {
		ds[i] = digest.FromString(strconv.Itoa(i))
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tr.Touch("aks-managed-repository/oss/kubernetes/pause", ds[i%len(ds)])
			i++
		}
	})
}

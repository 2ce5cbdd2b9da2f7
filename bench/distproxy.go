package bench

import (
	"errors"
	"os"
	"path/filepath"
)

// DistproxyModule is where the distribution target's command lives in the
// source tree: a Go module of its own, so that the product's go.mod does not
// carry distribution's server dependencies (redis, otel exporters, gorilla).
const DistproxyModule = "bench/cmd/distproxy"

// ErrNoDistproxySource says the source tree is not above any of the
// directories searched.
var ErrNoDistproxySource = errors.New(DistproxyModule + " not found")

// DistproxyDir returns the directory of DistproxyModule in the first source
// tree found above one of dirs (each directory and its parents), for
// `go -C DIR build`. It returns ErrNoDistproxySource when there is none.
func DistproxyDir(dirs ...string) (string, error) {
	for _, start := range dirs {
		if start == "" {
			continue
		}
		d, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			src := filepath.Join(d, filepath.FromSlash(DistproxyModule))
			if fi, err := os.Stat(filepath.Join(src, "go.mod")); err == nil && fi.Mode().IsRegular() {
				return src, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", ErrNoDistproxySource
}

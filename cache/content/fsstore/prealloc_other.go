//go:build !linux

package fsstore

import "os"

// preallocate is a no-op where fallocate is not available.
func preallocate(f *os.File, size int64) error { return nil }

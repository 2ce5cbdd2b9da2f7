package fsstore

import (
	"errors"
	"os"
	"syscall"
)

// preallocate reserves size bytes for an ingest, so that a full disk fails
// the ingest before any byte is served rather than in the middle of a
// response. Filesystems without fallocate are not an error.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
			return err
		}
		return nil
	}
}

// Package badgerutil opens badger databases after repairing what a crash
// can leave that badger itself cannot open.
package badgerutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// lockWait is how long Open keeps trying a directory lock that is held.
const lockWait = 2 * time.Second

// Open repairs the database's directories (see RemoveEmptyLogs) and opens
// it. A directory lock that is held is tried again for up to lockWait: the
// lock is an flock, and a child process forked by this one (os/exec) holds a
// copy of the descriptor until it execs, so a database closed just now can
// look locked for a moment. A lock held by another running process is still
// reported, after lockWait.
func Open(opts badger.Options) (*badger.DB, error) {
	if !opts.InMemory && !opts.ReadOnly {
		if err := RemoveEmptyLogs(opts.Dir, opts.ValueDir); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(lockWait)
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		db, err := badger.Open(opts)
		if err == nil || !IsLocked(err) || time.Now().After(deadline) {
			return db, err
		}
		time.Sleep(wait)
	}
}

// Options are the options every airlock database starts from: badger's
// defaults for dir, logs through log, no expvar metrics, and everything in
// memory when inMemory (tests). Callers add their own tuning.
func Options(dir string, log *zap.Logger, inMemory bool) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithLogger(Logger(log)).
		WithMetricsEnabled(false)
	if inMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	}
	return opts
}

// IsLocked reports whether err is badger's "directory lock held" error.
func IsLocked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// RemoveEmptyLogs deletes zero-length value logs (*.vlog) and memtable
// write-ahead logs (*.mem) in dirs. Badger creates both as it opens and
// runs; a process killed between creating such a file and sizing it leaves
// it empty, and badger (v4.9) then refuses to open the database ("… Create
// a new file"). An empty file holds no entries: nothing is lost.
func RemoveEmptyLogs(dirs ...string) error {
	var matches []string
	for _, dir := range dirs {
		for _, pattern := range []string{"*.vlog", "*.mem"} {
			m, err := filepath.Glob(filepath.Join(dir, pattern))
			if err != nil {
				return fmt.Errorf("badgerutil: %w", err)
			}
			matches = append(matches, m...)
		}
	}
	for _, p := range matches {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != 0 {
			continue
		}
		if err := os.Remove(p); err != nil {
			if os.IsNotExist(err) {
				continue // listed twice: Dir and ValueDir are the same
			}
			return fmt.Errorf("badgerutil: remove empty log: %w", err)
		}
	}
	return nil
}

// Package badgerutil opens badger databases after repairing what a crash
// can leave that badger itself cannot open.
package badgerutil

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// Open repairs the database's directories (see RemoveEmptyLogs) and opens
// it.
func Open(opts badger.Options) (*badger.DB, error) {
	if !opts.InMemory && !opts.ReadOnly {
		if err := RemoveEmptyLogs(opts.Dir, opts.ValueDir); err != nil {
			return nil, err
		}
	}
	return badger.Open(opts)
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

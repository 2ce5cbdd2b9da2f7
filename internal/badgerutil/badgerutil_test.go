package badgerutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// A zero-length value log or memtable log, as a kill during badger's open
// leaves, must not make the database unopenable, and no record may be lost.
func TestOpenAfterEmptyLogs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"999999.vlog", "00099.mem"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testEmptyLog(t, name)
		})
	}
}

func testEmptyLog(t *testing.T, name string) {
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMetricsEnabled(false)
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, name)
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if db, err := badger.Open(opts); err == nil {
		db.Close()
		t.Fatalf("badger opened a directory with an empty %s: the repair is no longer needed", name)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(opts)
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) != "v" {
				t.Fatalf("value %q", v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Options start from badger's defaults for the directory, without expvar
// metrics; in memory they name no directory.
func TestOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if o := Options(dir, zap.NewNop(), false); o.Dir != dir || o.ValueDir != dir || o.InMemory || o.MetricsEnabled || o.Logger == nil {
		t.Errorf("on disk: dir %q, value dir %q, in memory %v, metrics %v", o.Dir, o.ValueDir, o.InMemory, o.MetricsEnabled)
	}
	if o := Options(dir, zap.NewNop(), true); o.Dir != "" || o.ValueDir != "" || !o.InMemory {
		t.Errorf("in memory: dir %q, value dir %q, in memory %v", o.Dir, o.ValueDir, o.InMemory)
	}
}

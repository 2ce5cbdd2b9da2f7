// Package fsstore is the local filesystem content store: one file per blob
// under blobs/<algorithm>/<first two hex>/<hex>, written through temp files in
// ingest/ that are verified, fsynced and renamed into place.
package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/internal/blobfile"
	"github.com/opencontainers/go-digest"

	_ "crypto/sha256" // register digest algorithms
	_ "crypto/sha512"
)

// Store keeps blobs in a directory.
type Store struct {
	root string
}

var (
	_ content.Store  = (*Store)(nil)
	_ content.Walker = (*Store)(nil)
)

// New opens (creating if needed) a store rooted at dir and removes ingest
// files left behind by a crash: they were never committed.
func New(dir string) (*Store, error) {
	s := &Store{root: dir}
	for _, d := range []string{s.blobDir(), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("fsstore: %w", err)
		}
	}
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.ingestDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("fsstore: clean ingest: %w", err)
		}
	}
	return s, nil
}

func (s *Store) blobDir() string   { return filepath.Join(s.root, "blobs") }
func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// path returns the blob's file name; d must have been validated.
func (s *Store) path(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(s.blobDir(), string(d.Algorithm()), h[:2], h)
}

// Open returns the blob's *os.File, so http.ServeContent can use sendfile.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, content.Info, error) {
	if err := content.ValidateLookup(d); err != nil {
		return nil, content.Info{}, err
	}
	f, err := os.Open(s.path(d))
	if err != nil {
		return nil, content.Info{}, notFound(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, content.Info{}, fmt.Errorf("fsstore: stat %s: %w", d, err)
	}
	return f, content.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Stat implements content.Provider.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (content.Info, error) {
	if err := content.ValidateLookup(d); err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(s.path(d))
	if err != nil {
		return content.Info{}, notFound(d, err)
	}
	return content.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func notFound(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", content.ErrNotFound, d)
	}
	return fmt.Errorf("fsstore: %s: %w", d, err)
}

// Delete implements content.Deleter.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := content.ValidateLookup(d); err != nil {
		return err
	}
	if err := os.Remove(s.path(d)); err != nil {
		return notFound(d, err)
	}
	return nil
}

// Walk implements content.Walker. It trusts committed files (they were
// verified before the rename), so it does not re-hash them.
func (s *Store) Walk(ctx context.Context, fn func(content.Info) error) error {
	return filepath.WalkDir(s.blobDir(), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.blobDir(), p)
		if err != nil {
			return err
		}
		alg := filepath.Dir(filepath.Dir(rel))
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), e.Name())
		if content.ValidateDigest(d) != nil {
			return nil // not ours; leave it alone
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return fn(content.Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()})
	})
}

// Ingest implements content.Ingester.
func (s *Store) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	if err := content.ValidateWrite(d); err != nil {
		return nil, fmt.Errorf("fsstore: ingest %q: %w", d, err)
	}
	bf, err := blobfile.Create(s.ingestDir(), d.Encoded()[:16]+"-", d.Algorithm())
	if err != nil {
		return nil, fmt.Errorf("fsstore: ingest %s: %w", d, err)
	}
	if err := preallocate(bf.F, size); err != nil {
		bf.Close(true)
		return nil, fmt.Errorf("fsstore: ingest %s: reserve %d bytes: %w", d, size, err)
	}
	return blobfile.NewIngest(bf, "fsstore", d, size, blobfile.IngestHooks{
		Publish: s.publish,
		Keep:    true, // published by a rename
	}), nil
}

// publish makes the verified file bf the blob d: synced, then renamed into
// place and the directory synced. An identical blob may be committed
// already: replacing it atomically (readers keep the file they opened)
// leaves the blob in place even if a collector deletes the old file at the
// same moment. The Info is taken before the rename, which keeps the file's
// modification time. It is an IngestHooks.Publish.
func (s *Store) publish(_ context.Context, bf *blobfile.File, d digest.Digest) (content.Info, error) {
	if err := bf.F.Sync(); err != nil {
		return content.Info{}, fmt.Errorf("fsstore: sync %s: %w", d, err)
	}
	fi, err := bf.F.Stat()
	if err != nil {
		return content.Info{}, fmt.Errorf("fsstore: stat %s: %w", d, err)
	}
	final := s.path(d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return content.Info{}, fmt.Errorf("fsstore: %w", err)
	}
	if err := os.Rename(bf.Name, final); err != nil {
		return content.Info{}, fmt.Errorf("fsstore: commit %s: %w", d, err)
	} else if err := syncDir(filepath.Dir(final)); err != nil {
		return content.Info{}, err
	}
	return content.Info{Digest: d, Size: bf.Written(), ModTime: fi.ModTime()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsstore: sync dir: %w", err)
	}
	return nil
}

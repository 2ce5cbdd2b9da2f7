// Package blobfile is a blob being written to a local file: hashed as the
// bytes arrive, readable up to what was written, verified at the end. It is
// what the ingests of the content stores share; committing is theirs.
package blobfile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// File is a blob being written. Write is not safe for concurrent use;
// ReadAt and Written are, also with Write.
type File struct {
	// F is the open file; Name its path.
	F    *os.File
	Name string
	alg  digest.Algorithm
	h    hash.Hash
	n    atomic.Int64
}

// Create makes a new file named prefix plus random hex in dir, hashing
// with alg (which must be available).
func Create(dir, prefix string, alg digest.Algorithm) (*File, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	name := filepath.Join(dir, prefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	return &File{F: f, Name: name, alg: alg, h: alg.Hash()}, nil
}

// Write appends p to the file and the hash.
func (b *File) Write(p []byte) (int, error) {
	n, err := b.F.WriteAt(p, b.n.Load())
	b.h.Write(p[:n])
	b.n.Add(int64(n))
	return n, err
}

// Written is the number of bytes written so far.
func (b *File) Written() int64 { return b.n.Load() }

// ReadAt reads bytes already written; past them it returns io.EOF.
func (b *File) ReadAt(p []byte, off int64) (int, error) {
	n := b.n.Load()
	if off >= n {
		return 0, io.EOF
	}
	if rest := n - off; int64(len(p)) > rest {
		got, err := b.F.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return got, err
	}
	return b.F.ReadAt(p, off)
}

// Verify returns a *content.MismatchError unless the bytes written are
// want's, and size of them if size is not -1. Not with a concurrent Write.
func (b *File) Verify(ctx context.Context, want digest.Digest, size int64) error {
	n := b.n.Load()
	got, err := b.Digest(ctx, want.Algorithm())
	if err != nil {
		return err
	}
	if (size >= 0 && n != size) || got != want {
		return &content.MismatchError{WantDigest: want, GotDigest: got, WantSize: size, GotSize: n}
	}
	return nil
}

// Digest is the digest of the bytes written with alg: the running hash, or
// the file read back for another algorithm. Not with a concurrent Write.
func (b *File) Digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if alg == b.alg {
		return digest.NewDigest(alg, b.h), nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h := alg.Hash()
	if _, err := io.Copy(h, io.NewSectionReader(b.F, 0, b.n.Load())); err != nil {
		return "", fmt.Errorf("rehash: %w", err)
	}
	return digest.NewDigest(alg, h), nil
}

// Close closes the file and, with remove, removes its name (already gone
// is fine: it was renamed away or its directory cleaned).
func (b *File) Close(remove bool) error {
	err := b.F.Close()
	if remove {
		if rerr := os.Remove(b.Name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

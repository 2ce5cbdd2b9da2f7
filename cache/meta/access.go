package meta

import (
	"encoding/binary"
	"time"

	"github.com/opencontainers/go-digest"
)

// kAccess records when a repository's manifest or blob was last served.
// The cache keeps these times in memory and writes them here in batches,
// so that least-recently-used order survives a restart without a write on
// every request.
const kAccess = "a"

// Access is when a manifest or blob of a repository was last served.
type Access struct {
	Repo   string
	Digest digest.Digest
	At     time.Time
}

// PutAccess records access times in as few transactions as it can.
func (x *Index) PutAccess(as []Access) error {
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, a := range as {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(a.At.UnixNano()))
		if err := wb.Set(key(kAccess, a.Repo, a.Digest.String()), v[:]); err != nil {
			return wrap("put access", err)
		}
	}
	return wrap("put access", wb.Flush())
}

// EachAccess calls fn for every recorded access time.
func (x *Index) EachAccess(fn func(Access) error) error {
	return wrap("access", x.each(kAccess, "", func(repo, d string, v []byte) error {
		if len(v) != 8 {
			return nil
		}
		return fn(Access{Repo: repo, Digest: digest.Digest(d), At: time.Unix(0, int64(binary.BigEndian.Uint64(v)))})
	}))
}

// DeleteAccess removes access records (of links that no longer exist).
func (x *Index) DeleteAccess(as []Access) error {
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, a := range as {
		if err := wb.Delete(key(kAccess, a.Repo, a.Digest.String())); err != nil {
			return wrap("delete access", err)
		}
	}
	return wrap("delete access", wb.Flush())
}

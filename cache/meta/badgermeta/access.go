package badgermeta

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// kAccess records when a repository's manifest or blob was last served.
// The cache keeps these times in memory and writes them here in batches,
// so that least-recently-used order survives a restart without a write on
// every request.
const kAccess = "a"

// PutAccess implements meta.AccessRecorder, in as few transactions as it
// can.
func (x *Index) PutAccess(ctx context.Context, as []meta.Access) error {
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

// EachAccess implements meta.AccessLog.
func (x *Index) EachAccess(ctx context.Context, fn func(meta.Access) error) error {
	return wrap("access", x.each(ctx, kAccess, "", func(repo, d string, v []byte) error {
		if len(v) != 8 {
			return nil
		}
		return fn(meta.Access{Repo: repo, Digest: digest.Digest(d), At: time.Unix(0, int64(binary.BigEndian.Uint64(v)))})
	}))
}

// DeleteAccess implements meta.AccessLog.
func (x *Index) DeleteAccess(ctx context.Context, as []meta.Access) error {
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, a := range as {
		if err := wb.Delete(key(kAccess, a.Repo, a.Digest.String())); err != nil {
			return wrap("delete access", err)
		}
	}
	return wrap("delete access", wb.Flush())
}

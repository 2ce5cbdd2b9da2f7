package evict

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// Store is what the collector needs of a content store: reading, writing,
// deleting and listing committed blobs.
type Store interface {
	content.Store
	content.Walker
}

// accounted wraps the content store the engine writes through: each write
// reserves its bytes within the quota before writing them (quota.go), and
// the committed bytes are added to the collector's estimate of the store's
// size; the collector is woken when the estimate passes the high watermark
// or a write finds the disk full.
type accounted struct {
	Store
	c *Collector
}

var _ Store = (*accounted)(nil)

// Ingest implements content.Ingester. A blob of known size reserves all of
// it here: it fails with content.ErrNoRoom before anything is written if
// the quota cannot hold it. A blob of unknown size reserves as it is
// written.
func (a *accounted) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	res, err := a.c.reserve(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", d, err)
	}
	w, err := a.Store.Ingest(ctx, d, size)
	if err != nil {
		res.release()
		a.c.noteErr(err)
		return nil, err
	}
	return &accountedIngest{Ingest: w, res: res}, nil
}

type accountedIngest struct {
	content.Ingest
	res *reservation
}

func (w *accountedIngest) Write(p []byte) (int, error) {
	return w.res.write(w.Ingest, w.Written(), p)
}

func (w *accountedIngest) Commit(ctx context.Context) (content.Info, error) {
	return w.res.committed(w.Ingest.Commit(ctx))
}

func (w *accountedIngest) Close() error {
	w.res.release()
	return w.Ingest.Close()
}

// diskFull reports whether err says the filesystem or a quota is full.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// accountedPending is accounted over a store that also takes writes of
// unknown digest (chunked pushes): the ability stays visible to the engine.
type accountedPending struct {
	*accounted
	pi content.PendingIngester
}

var _ content.PendingIngester = (*accountedPending)(nil)

// IngestPending implements content.PendingIngester: the blob reserves its
// bytes as they are written.
func (a *accountedPending) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	p, err := a.pi.IngestPending(ctx, alg)
	if err != nil {
		a.c.noteErr(err)
		return nil, err
	}
	return &accountedPendingWrite{Pending: p, res: &reservation{c: a.c}}, nil
}

type accountedPendingWrite struct {
	content.Pending
	res *reservation
}

func (w *accountedPendingWrite) Write(p []byte) (int, error) {
	return w.res.write(w.Pending, w.Written(), p)
}

func (w *accountedPendingWrite) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	return w.res.committed(w.Pending.Commit(ctx, d))
}

func (w *accountedPendingWrite) Close() error {
	w.res.release()
	return w.Pending.Close()
}

// accountedCopier is accounted over a store that copies blobs inside its
// backend (content.Copier): a copy reserves its bytes like an ingest.
type accountedCopier struct {
	*accounted
	cp content.Copier
}

var _ content.Copier = (*accountedCopier)(nil)

// Copy implements content.Copier.
func (a *accountedCopier) Copy(ctx context.Context, d digest.Digest, size int64, src content.CopySource) (content.Info, error) {
	return a.c.accountCopy(ctx, a.cp, d, size, src)
}

// accountedPendingCopier keeps both optional abilities.
type accountedPendingCopier struct {
	*accountedPending
	cp content.Copier
}

var _ content.Copier = (*accountedPendingCopier)(nil)

// Copy implements content.Copier.
func (a *accountedPendingCopier) Copy(ctx context.Context, d digest.Digest, size int64, src content.CopySource) (content.Info, error) {
	return a.c.accountCopy(ctx, a.cp, d, size, src)
}

// accountCopy reserves size bytes, copies, and counts what committed.
func (c *Collector) accountCopy(ctx context.Context, cp content.Copier, d digest.Digest, size int64, src content.CopySource) (content.Info, error) {
	res, err := c.reserve(ctx, size)
	if err != nil {
		return content.Info{}, fmt.Errorf("copy %s: %w", d, err)
	}
	info, err := cp.Copy(ctx, d, size, src)
	if err != nil {
		res.release()
	}
	return res.committed(info, err)
}

package evict

import (
	"context"
	"errors"
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

// accounted wraps the content store the engine writes through: it adds
// committed bytes to the collector's estimate of the store's size, and
// wakes the collector when the estimate passes the high watermark or a
// write finds the disk full.
type accounted struct {
	Store
	c *Collector
}

var _ Store = (*accounted)(nil)

// Ingest implements content.Ingester.
func (a *accounted) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	w, err := a.Store.Ingest(ctx, d, size)
	if err != nil {
		a.c.noteErr(err)
		return nil, err
	}
	return &accountedIngest{Ingest: w, c: a.c}, nil
}

type accountedIngest struct {
	content.Ingest
	c *Collector
}

func (w *accountedIngest) Write(p []byte) (int, error) {
	n, err := w.Ingest.Write(p)
	if err != nil {
		w.c.noteErr(err)
	}
	return n, err
}

func (w *accountedIngest) Commit(ctx context.Context) (content.Info, error) {
	info, err := w.Ingest.Commit(ctx)
	if err != nil {
		w.c.noteErr(err)
		return info, err
	}
	w.c.added(info.Size)
	return info, nil
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

// IngestPending implements content.PendingIngester.
func (a *accountedPending) IngestPending(ctx context.Context, alg digest.Algorithm) (content.Pending, error) {
	p, err := a.pi.IngestPending(ctx, alg)
	if err != nil {
		a.c.noteErr(err)
		return nil, err
	}
	return &accountedPendingWrite{Pending: p, c: a.c}, nil
}

type accountedPendingWrite struct {
	content.Pending
	c *Collector
}

func (w *accountedPendingWrite) Write(p []byte) (int, error) {
	n, err := w.Pending.Write(p)
	if err != nil {
		w.c.noteErr(err)
	}
	return n, err
}

func (w *accountedPendingWrite) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	info, err := w.Pending.Commit(ctx, d)
	if err != nil {
		w.c.noteErr(err)
		return info, err
	}
	w.c.added(info.Size)
	return info, nil
}

package azstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/internal/blobfile"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// Ingest implements content.Ingester. The bytes go to a local file (which
// ReadAt serves to readers following the fill) and are hashed and staged
// as blocks while they arrive; Commit verifies them and then commits.
func (s *Store) Ingest(ctx context.Context, d digest.Digest, size int64) (content.Ingest, error) {
	if err := content.ValidateWrite(d); err != nil {
		return nil, fmt.Errorf("azstore: ingest %q: %w", d, err)
	}
	w, err := s.localIngest(ctx, d, size)
	if err != nil {
		return nil, err
	}
	if err := w.Share(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// IngestLocal implements content.LocalIngester: the bytes go to a local
// file only, hashed as they arrive; Commit verifies them and puts the file
// in the spool, writing nothing to the container, unless Share made it an
// ingest of the container.
func (s *Store) IngestLocal(ctx context.Context, d digest.Digest, size int64) (content.LocalIngest, error) {
	return s.localIngest(ctx, d, size)
}

func (s *Store) localIngest(ctx context.Context, d digest.Digest, size int64) (*ingest, error) {
	if err := content.ValidateWrite(d); err != nil {
		return nil, fmt.Errorf("azstore: ingest %q: %w", d, err)
	}
	bf, err := blobfile.Create(s.ingestDir, "in-", d.Algorithm())
	if err != nil {
		return nil, fmt.Errorf("azstore: ingest %s: %w", d, err)
	}
	w := &ingest{s: s, want: d, size: size}
	w.Ingest = blobfile.NewIngest(bf, "azstore", d, size, blobfile.IngestHooks{
		Publish: w.publish,
		Wrote: func(written int64) {
			if w.blocks != nil {
				w.blocks.grow(written, false)
			}
		},
		Closing: func() {
			if w.blocks != nil {
				w.cancel()
				<-w.blocks.done
			}
		},
	})
	return w, nil
}

// blockSize is the configured block size, raised if a blob of size bytes
// would need more blocks than the service takes.
func (s *Store) blockSize(size int64) int64 {
	if size > s.block*maxBlocks {
		return (size + maxBlocks - 1) / maxBlocks
	}
	return s.block
}

// ingest is a local file (ReadAt serves it until Close, also after
// Commit) that Share makes an ingest of the container too.
type ingest struct {
	*blobfile.Ingest
	s    *Store
	want digest.Digest
	size int64

	// Guarded by the Ingest's lock (its hooks and WhileOpen hold it).
	blocks *blocks // nil while the ingest is local (IngestLocal before Share)
	cancel context.CancelFunc
}

// Share implements content.LocalIngest: blocks of the bytes written so far
// and of those to come are staged while they arrive. Staging serves
// everyone waiting on this fill: it is not tied to the caller's request,
// only to the ingest (Close stops it).
func (w *ingest) Share(ctx context.Context) error {
	return w.WhileOpen(func(bf *blobfile.File) error {
		if w.blocks != nil {
			return nil
		}
		name := blobName(w.want)
		b, err := newBlocks(w.s.ctr.Client().NewBlockBlobClient(name), name, bf.F, w.s.blockSize(w.size))
		if err != nil {
			return err
		}
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w.blocks, w.cancel = b, cancel
		b.grow(bf.Written(), false)
		go b.run(bctx)
		return nil
	})
}

// publish makes the verified bytes of bf the blob d in the container (a
// local ingest only keeps them here); the file also enters the spool.
func (w *ingest) publish(ctx context.Context, bf *blobfile.File, d digest.Digest) (content.Info, error) {
	n := bf.Written()
	mod := w.s.now()
	if w.blocks != nil {
		var err error
		if mod, err = w.s.put(ctx, d, bf.F, n, w.blocks); err != nil {
			return content.Info{}, err
		}
	}
	info := content.Info{Digest: d, Size: n, ModTime: mod}
	w.s.adopt(bf, info)
	return info, nil
}

// adopt links a committed ingest's verified file into the spool, so the
// first Open after a fill is already warm. The file is synced first: after
// a crash the spool is trusted as it is found. A full spool skips it.
func (s *Store) adopt(bf *blobfile.File, info content.Info) {
	if !s.spool.reserve(info.Size) {
		return
	}
	if err := bf.F.Sync(); err != nil {
		s.spool.unreserve(info.Size)
		return
	}
	s.spool.add(bf.Name, entry{d: info.Digest, size: info.Size, mod: info.ModTime, checked: s.now()}, true)
}

// maxPutTries bounds how often put writes a blob that keeps vanishing
// between an "already exists" answer and the touch that follows.
const maxPutTries = 3

// put makes the blob d from the first n verified bytes of src, create-only
// (If-None-Match: *): in one Put Blob if nothing was staged and it fits one
// block, else by committing the staged blocks (b, which may be nil: the
// bytes are then staged now). A blob already there is success: it is
// touched so its Last-Modified shows the new write (a collector comparing
// ModTime spares it); if it vanished meanwhile, or our staged blocks were
// dropped by another writer's commit, the bytes are sent again. It returns
// the blob's Last-Modified.
func (s *Store) put(ctx context.Context, d digest.Digest, src io.ReaderAt, n int64, b *blocks) (time.Time, error) {
	name := blobName(d)
	bb := s.ctr.Client().NewBlockBlobClient(name)
	create := azure.Cond{IfNoneMatch: azcore.ETagAny}.Access()
	for try := 1; ; try++ {
		if b == nil {
			var err error
			if b, err = newBlocks(bb, name, src, s.blockSize(n)); err != nil {
				return time.Time{}, err
			}
			b.grow(n, true)
			go b.run(ctx)
		}
		var mod *time.Time
		var err error
		staged := true
		if b.oneShot(n) {
			body := streaming.NopCloser(io.NewSectionReader(src, 0, n))
			var r blockblob.UploadResponse
			r, err = bb.Upload(ctx, body, &blockblob.UploadOptions{AccessConditions: create})
			mod = r.LastModified
		} else {
			var ids []string
			if ids, err = b.finish(ctx, n); err != nil {
				staged = false
			} else {
				var r blockblob.CommitBlockListResponse
				r, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: create})
				mod = r.LastModified
			}
		}
		if err == nil {
			return azure.Value(mod), nil
		}
		// Staging failed (not for want of time), or another writer's commit
		// dropped our staged blocks: send the bytes again.
		retry := !staged && ctx.Err() == nil || bloberror.HasCode(err, bloberror.InvalidBlockList)
		if err = azure.Classify("commit", name, err); errors.Is(err, azure.ErrExists) {
			var t time.Time
			if t, err = s.touch(ctx, bb, name, n); err == nil {
				return t, nil
			}
			retry = errors.Is(err, azure.ErrNotFound)
		}
		if !retry || try >= maxPutTries {
			return time.Time{}, err
		}
		b = nil
	}
}

// touch checks that the existing blob name has n bytes (the name is its
// digest, and only verified bytes are committed) and marks it written now.
func (s *Store) touch(ctx context.Context, bb *blockblob.Client, name string, n int64) (time.Time, error) {
	p, err := bb.GetProperties(ctx, nil)
	if err != nil {
		return time.Time{}, azure.Classify("stat", name, err)
	}
	if size := azure.Value(p.ContentLength); size != n {
		return time.Time{}, fmt.Errorf("azstore: %s exists with %d bytes, not %d", name, size, n)
	}
	r, err := bb.SetMetadata(ctx, nil, nil)
	if err != nil {
		return time.Time{}, azure.Classify("touch", name, err)
	}
	return azure.Value(r.LastModified), nil
}

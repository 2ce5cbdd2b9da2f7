package azupload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// session is a handle on one shared session, for one request.
type session struct {
	st   *Store
	id   string
	repo string
	size atomic.Int64 // as the record said at the last read
}

var _ upload.Session = (*session)(nil)

func (s *session) ID() string   { return s.id }
func (s *session) Repo() string { return s.repo }
func (s *session) Size() int64  { return s.size.Load() }

// errBusy means another request holds the session.
var errBusy = errors.New("another request is writing this upload")

// hold is a request's lease on a session, renewed until release. Its ctx
// outlives the caller's cancellation (a client that hangs up mid-chunk
// keeps what arrived, recorded) and is cancelled if the lease is lost.
type hold struct {
	l      *azure.Lease
	ctx    context.Context
	cancel context.CancelCauseFunc
	kept   chan struct{}
	ended  bool // the append blob is gone: nothing to release
}

// lock takes the session's lease. With wait it retries while another
// request holds it (until ctx ends), else it returns errBusy. Errors wrap
// upload.ErrUnknown if the session's data is gone.
func (s *session) lock(ctx context.Context, wait bool) (*hold, error) {
	name := dataName(s.id)
	delay := 50 * time.Millisecond
	for {
		l, err := s.st.ctr.AcquireLease(ctx, name, sessionLease)
		switch {
		case err == nil:
			hctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
			h := &hold{l: l, ctx: hctx, cancel: cancel, kept: make(chan struct{})}
			go func() {
				defer close(h.kept)
				if err := l.Keep(hctx, sessionLease/3); errors.Is(err, azure.ErrLeaseLost) {
					cancel(err)
				}
			}()
			return h, nil
		case errors.Is(err, azure.ErrNotFound):
			return nil, fmt.Errorf("%w: %s", upload.ErrUnknown, s.id)
		case !errors.Is(err, azure.ErrLeaseConflict):
			return nil, fmt.Errorf("azupload: lock %s: %w", s.id, err)
		case !wait:
			return nil, fmt.Errorf("%w: %w", upload.ErrOffset, errBusy)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		delay = min(2*delay, time.Second)
	}
}

// unlock stops renewing and releases the lease (unless the session
// ended, which deleted the blob and its lease).
func (s *session) unlock(h *hold) {
	h.cancel(nil)
	<-h.kept
	if h.ended {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
	defer cancel()
	if err := h.l.Release(ctx); err != nil && !errors.Is(err, azure.ErrNotFound) {
		s.st.log.Warn("upload: release a session; its lease expires by itself", zap.String("upload", s.id), zap.Error(err))
	}
}

// record reads the session's record under the lease; an expired one is
// discarded. Errors wrap upload.ErrUnknown when there is no session.
func (s *session) record(h *hold) (azmeta.Upload, azmeta.Version, error) {
	rec, v, err := s.st.idx.Upload(h.ctx, s.id)
	if errors.Is(err, meta.ErrNotFound) {
		return rec, v, fmt.Errorf("%w: %s", upload.ErrUnknown, s.id)
	}
	if err != nil {
		return rec, v, fmt.Errorf("azupload: %w", err)
	}
	if s.st.expiredAt(rec.Updated) {
		if err := s.end(h, v, true); err != nil {
			s.st.log.Warn("upload: discard an expired session", zap.String("upload", s.id), zap.Error(err))
		}
		return rec, v, fmt.Errorf("%w: %s (expired)", upload.ErrUnknown, s.id)
	}
	s.size.Store(rec.Size)
	return rec, v, nil
}

// Append implements upload.Session.
func (s *session) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	h, err := s.lock(ctx, false)
	if err != nil {
		return 0, err
	}
	defer s.unlock(h)
	rec, v, err := s.record(h)
	if err != nil {
		return 0, err
	}
	if offset != rec.Size {
		return 0, fmt.Errorf("%w: chunk starts at %d, upload is at %d", upload.ErrOffset, offset, rec.Size)
	}
	hs, err := restoreHash(rec.Algorithm, rec.Hash)
	if err != nil {
		return 0, err
	}
	n, werr := s.appendBlocks(h, rec.Size, r, hs)
	if errors.Is(werr, errBehind) {
		// A request whose replica died appended past the record: adopt
		// its bytes; the client's chunk no longer starts at the end.
		if rec, _, _, err = s.adopt(h, rec, v); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: chunk starts at %d, upload is at %d", upload.ErrOffset, offset, rec.Size)
	}
	if n > 0 {
		if rec.Hash, err = marshalHash(hs); err != nil {
			return n, err
		}
		rec.Size += n
	}
	rec.Updated = s.st.now().UTC()
	if _, err := s.st.idx.UpdateUpload(h.ctx, s.id, rec, v); err != nil {
		return n, fmt.Errorf("azupload: record %d bytes of %s: %w", n, s.id, err)
	}
	s.size.Store(rec.Size)
	if werr != nil {
		return n, fmt.Errorf("upload %s: %w", s.id, werr)
	}
	return n, nil
}

// errBehind means the append blob holds more than the record: a request
// that died appended without recording.
var errBehind = errors.New("the upload's data is past its record")

// appendBlocks appends r at pos in blocks, hashing what was appended, and
// returns how many bytes it appended. A body that fails keeps what was
// read before the failure.
func (s *session) appendBlocks(h *hold, pos int64, r io.Reader, hs hash.Hash) (int64, error) {
	ab := s.st.ctr.Client().NewAppendBlobClient(dataName(s.id))
	bp := s.st.bufs.Get().(*[]byte)
	defer s.st.bufs.Put(bp)
	buf := *bp
	var n int64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			at := pos + n
			_, err := ab.AppendBlock(h.ctx, streaming.NopCloser(bytes.NewReader(buf[:k])), &appendblob.AppendBlockOptions{
				AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: &at},
				AccessConditions:               h.l.Cond().Access(),
			})
			if err != nil {
				if bloberror.HasCode(err, bloberror.AppendPositionConditionNotMet) && n == 0 {
					return 0, errBehind
				}
				if cause := context.Cause(h.ctx); cause != nil && h.ctx.Err() != nil {
					err = cause
				}
				return n, azure.Classify("append", dataName(s.id), err)
			}
			hs.Write(buf[:k])
			n += int64(k)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, nil
		case rerr != nil:
			return n, rerr
		}
	}
}

// adopt records the bytes the append blob holds past rec (see errBehind):
// it reads them back and hashes them. It returns the record and the
// append blob's properties, which then agree on the size.
func (s *session) adopt(h *hold, rec azmeta.Upload, v azmeta.Version) (azmeta.Upload, azmeta.Version, azure.Props, error) {
	name := dataName(s.id)
	p, err := s.st.ctr.Stat(h.ctx, name)
	if err != nil {
		return rec, v, p, fmt.Errorf("azupload: %w", err)
	}
	if p.Size == rec.Size {
		return rec, v, p, nil
	}
	if p.Size < rec.Size {
		return rec, v, p, fmt.Errorf("azupload: session %s records %d bytes, its data holds %d", s.id, rec.Size, p.Size)
	}
	hs, err := restoreHash(rec.Algorithm, rec.Hash)
	if err != nil {
		return rec, v, p, err
	}
	if err := s.read(h.ctx, rec.Size, p.Size-rec.Size, string(p.ETag), hs); err != nil {
		return rec, v, p, err
	}
	if rec.Hash, err = marshalHash(hs); err != nil {
		return rec, v, p, err
	}
	s.st.log.Info("upload: adopted bytes a failed request appended", zap.String("upload", s.id),
		zap.Int64("from", rec.Size), zap.Int64("to", p.Size))
	rec.Size, rec.Updated = p.Size, s.st.now().UTC()
	if v, err = s.st.idx.UpdateUpload(h.ctx, s.id, rec, v); err != nil {
		return rec, v, p, fmt.Errorf("azupload: %w", err)
	}
	s.size.Store(rec.Size)
	return rec, v, p, nil
}

// read writes n bytes of the append blob from off, at version etag, to w.
func (s *session) read(ctx context.Context, off, n int64, etag string, w io.Writer) error {
	if n == 0 {
		return nil
	}
	rc, err := openRange(ctx, s.st.ctr, dataName(s.id), off, n, etag)
	if err != nil {
		return err
	}
	defer rc.Close()
	if m, err := io.Copy(w, rc); err != nil || m != n {
		return fmt.Errorf("azupload: read %s [%d, %d): %d bytes, %v", dataName(s.id), off, off+n, m, err)
	}
	return nil
}

// Commit implements upload.Session.
func (s *session) Commit(ctx context.Context, d digest.Digest) (content.Info, error) {
	h, err := s.lock(ctx, true)
	if err != nil {
		return content.Info{}, err
	}
	defer s.unlock(h)
	rec, v, err := s.record(h)
	if err != nil {
		return content.Info{}, err
	}
	defer func() {
		if err := s.end(h, v, false); err != nil {
			s.st.log.Warn("upload: end a committed session; the sweep will", zap.String("upload", s.id), zap.Error(err))
		}
	}()
	var p azure.Props
	if rec, v, p, err = s.adopt(h, rec, v); err != nil {
		return content.Info{}, err
	}
	got, err := s.sum(h.ctx, rec, d.Algorithm(), string(p.ETag))
	if err != nil {
		return content.Info{}, err
	}
	if got != d {
		return content.Info{}, &content.MismatchError{WantDigest: d, GotDigest: got, WantSize: -1, GotSize: rec.Size}
	}
	return s.st.publish(h.ctx, d, rec.Size, s.id, string(p.ETag))
}

// sum is the digest of the session's bytes under alg: from the recorded
// hash state for the session's algorithm, else by reading them again.
func (s *session) sum(ctx context.Context, rec azmeta.Upload, alg digest.Algorithm, etag string) (digest.Digest, error) {
	if !alg.Available() {
		return "", fmt.Errorf("azupload: %w: %s", content.ErrUnsupportedDigest, alg)
	}
	if alg == rec.Algorithm {
		hs, err := restoreHash(rec.Algorithm, rec.Hash)
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, hs), nil
	}
	hs := alg.Hash()
	if err := s.read(ctx, 0, rec.Size, etag, hs); err != nil {
		return "", err
	}
	return digest.NewDigest(alg, hs), nil
}

// Cancel implements upload.Session.
func (s *session) Cancel(ctx context.Context) error {
	h, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer s.unlock(h)
	_, v, err := s.record(h)
	if err != nil {
		return err
	}
	return s.end(h, v, false)
}

// end deletes the record (if still at v) and the append blob, under the
// lease; expired counts it as an expiry.
func (s *session) end(h *hold, v azmeta.Version, expired bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 30*time.Second)
	defer cancel()
	if err := s.st.idx.DeleteUpload(ctx, s.id, v); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("azupload: end %s: %w", s.id, err)
	}
	s.st.open.Add(-1)
	if expired {
		s.st.expired.Add(1)
		s.st.log.Info("upload session expired", zap.String("repo", s.repo), zap.String("upload", s.id), zap.Int64("bytes", s.size.Load()))
	}
	if err := s.st.ctr.Delete(ctx, dataName(s.id), h.l.Cond()); err != nil && !errors.Is(err, azure.ErrNotFound) {
		return fmt.Errorf("azupload: delete the data of %s: %w", s.id, err)
	}
	h.ended = true
	return nil
}

package azstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// errDownload is what readers of a download that failed get: their
// response is aborted rather than completed with unverified bytes.
var errDownload = errors.New("azstore: download failed")

// download is one copy of a blob from the container into a local file.
// Any number of readers follow the file while it grows; they see the end
// only once size and digest are verified.
type download struct {
	d     digest.Digest
	ready chan struct{} // closed once the response started, or failed to

	// Set before ready closes, read only after.
	startErr error
	size     int64
	mod      time.Time
	file     *os.File
	tmp      string
	body     io.ReadCloser
	spooled  bool // a spool reservation is held; else the file is already unlinked

	mu      sync.Mutex
	written int64
	ended   bool
	err     error
	notify  chan struct{} // closed and replaced on progress
	refs    int
}

// fetch starts the download of d and returns a reader of it; callers
// that come while it runs follow the same download. It returns an error
// wrapping content.ErrNotFound if the container has no such blob.
func (s *Store) fetch(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, content.Info, error) {
	sp := s.spool
	sp.mu.Lock()
	if _, ok := sp.entries[d]; ok { // spooled since Open looked
		sp.mu.Unlock()
		return s.Open(ctx, d)
	}
	dl, running := sp.loads[d]
	if !running {
		// One reference for the writer, released when it ends.
		dl = &download{d: d, ready: make(chan struct{}), notify: make(chan struct{}), refs: 1}
		sp.loads[d] = dl
	}
	dl.acquire()
	sp.mu.Unlock()
	if !running {
		s.m.misses.Inc()
		s.downloads.Go(func() { s.run(context.WithoutCancel(ctx), dl) })
	}
	select {
	case <-dl.ready:
	case <-ctx.Done():
		dl.release()
		return nil, content.Info{}, ctx.Err()
	}
	if dl.startErr != nil {
		dl.release()
		return nil, content.Info{}, dl.startErr
	}
	return &dlReader{dl: dl, ctx: ctx}, content.Info{Digest: d, Size: dl.size, ModTime: dl.mod}, nil
}

// run is the download's writer. A download that receives nothing for the
// stall timeout is cancelled, so that it fails (and the next Open starts
// afresh) rather than holding its readers forever.
func (s *Store) run(ctx context.Context, dl *download) {
	defer dl.release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(s.stall, cancel)
	defer watchdog.Stop()
	progress := func() { watchdog.Reset(s.stall) }
	if dl.startErr = s.start(ctx, dl); dl.startErr != nil {
		s.spool.endLoad(dl)
		close(dl.ready)
		return
	}
	close(dl.ready)
	err := s.copyVerified(dl, progress)
	dl.body.Close()
	if err == nil && dl.spooled {
		// If the file cannot enter the spool the readers still have it;
		// the next Open downloads again.
		s.spool.add(dl.tmp, entry{d: dl.d, size: dl.size, mod: dl.mod, checked: s.now()}, false)
		dl.spooled = false // the reservation is the entry's now, or given back
	}
	if dl.spooled {
		s.spool.unreserve(dl.size)
		os.Remove(dl.tmp)
	}
	s.spool.endLoad(dl)
	dl.finish(err)
}

// start sends the GET and opens the local file.
func (s *Store) start(ctx context.Context, dl *download) error {
	name := blobName(dl.d)
	resp, err := s.ctr.Client().NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return notFound(dl.d, azure.Classify("download", name, err))
	}
	if resp.ContentLength == nil || *resp.ContentLength < 0 {
		resp.Body.Close()
		return fmt.Errorf("azstore: download %s: no content length", dl.d)
	}
	f, tmp, err := s.tempFile("dl-")
	if err != nil {
		resp.Body.Close()
		return err
	}
	dl.size, dl.mod, dl.file, dl.tmp = *resp.ContentLength, azure.Value(resp.LastModified), f, tmp
	// Broken connections resume where they stopped, from the same version
	// of the blob (the SDK's retry reader sends If-Match with its ETag).
	dl.body = resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 5})
	dl.spooled = s.spool.reserve(dl.size)
	if !dl.spooled {
		// Too big for the spool, or it is full of running downloads: the
		// file lives only as long as its readers.
		os.Remove(tmp)
	}
	return nil
}

// copyVerified copies the body into the file, hashing it and calling
// progress after each read, and checks size and digest at the end; a
// spooled file is synced.
func (s *Store) copyVerified(dl *download, progress func()) error {
	h := dl.d.Algorithm().Hash()
	buf := make([]byte, 256<<10)
	var off int64
	for {
		n, rerr := dl.body.Read(buf)
		if n > 0 {
			if off+int64(n) > dl.size {
				return fmt.Errorf("azstore: download %s: more than the %d bytes announced", dl.d, dl.size)
			}
			if _, err := dl.file.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("azstore: download %s: %w", dl.d, err)
			}
			h.Write(buf[:n])
			off += int64(n)
			dl.progress(off)
			progress()
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("azstore: download %s: %w", dl.d, rerr)
		}
	}
	if got := digest.NewDigest(dl.d.Algorithm(), h); off != dl.size || got != dl.d {
		return &content.MismatchError{WantDigest: dl.d, GotDigest: got, WantSize: dl.size, GotSize: off}
	}
	if dl.spooled {
		if err := dl.file.Sync(); err != nil {
			return fmt.Errorf("azstore: sync %s: %w", dl.d, err)
		}
	}
	return nil
}

func (dl *download) acquire() {
	dl.mu.Lock()
	dl.refs++
	dl.mu.Unlock()
}

// release drops a reference; the last one closes the file.
func (dl *download) release() {
	dl.mu.Lock()
	dl.refs--
	last := dl.refs == 0
	dl.mu.Unlock()
	if last && dl.file != nil {
		dl.file.Close()
	}
}

func (dl *download) progress(written int64) {
	dl.mu.Lock()
	dl.written = written
	close(dl.notify)
	dl.notify = make(chan struct{})
	dl.mu.Unlock()
}

// finish ends the download with err (nil: verified) and wakes the readers.
func (dl *download) finish(err error) {
	dl.mu.Lock()
	dl.ended, dl.err = true, err
	close(dl.notify)
	dl.notify = make(chan struct{})
	dl.mu.Unlock()
}

// dlReader reads a download as it grows. It returns io.EOF only after the
// download verified, and an error wrapping errDownload if it failed.
type dlReader struct {
	dl   *download
	ctx  context.Context
	off  int64
	once sync.Once
}

func (r *dlReader) Read(p []byte) (int, error) {
	dl := r.dl
	for {
		dl.mu.Lock()
		written, ended, derr, ch := dl.written, dl.ended, dl.err, dl.notify
		dl.mu.Unlock()
		switch {
		case ended && derr != nil:
			return 0, fmt.Errorf("%w: %s: %w", errDownload, dl.d, derr)
		case r.off < written:
			n := min(int64(len(p)), written-r.off)
			got, err := dl.file.ReadAt(p[:n], r.off)
			r.off += int64(got)
			if got > 0 || !errors.Is(err, io.EOF) {
				return got, err
			}
		case ended && r.off >= dl.size:
			return 0, io.EOF
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *dlReader) Seek(offset int64, whence int) (int64, error) {
	abs := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		abs += r.off
	case io.SeekEnd:
		abs += r.dl.size
	default:
		return 0, errors.New("azstore: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("azstore: negative position")
	}
	r.off = abs
	return abs, nil
}

func (r *dlReader) Close() error {
	r.once.Do(r.dl.release)
	return nil
}

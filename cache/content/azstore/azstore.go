// Package azstore is a content store on Azure Blob Storage, shared by any
// number of airlock replicas: blobs live in the container as
// blobs/<algorithm>/<hex>, written only after their size and digest were
// verified (staged blocks, then a create-only commit), and a bounded local
// spool of recently used blobs serves warm reads from an *os.File so the
// sendfile path stays.
package azstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	_ "crypto/sha256" // register digest algorithms
	_ "crypto/sha512"
)

// Defaults of the options.
const (
	DefaultSpoolLimit = 10 << 30
	DefaultBlockSize  = 8 << 20
	DefaultRevalidate = 30 * time.Second
	// downloadStall is how long a download may receive nothing.
	downloadStall = time.Minute
	// checkTimeout bounds a revalidation (one request for every Open
	// waiting on it), whatever happens to the Open that started it.
	checkTimeout = time.Minute
)

// prefix is where blobs live in the container; other stores (metadata,
// fill records) share the container under other prefixes.
const prefix = "blobs/"

// maxBlocks is the service's limit of committed blocks per blob.
const maxBlocks = 50_000

// Store is the Azure content store. It is safe for concurrent use.
type Store struct {
	ctr        *azure.Container
	ingestDir  string
	spool      *spool
	spoolLimit int64
	block      int64
	revalidate time.Duration
	stall      time.Duration // a download receiving nothing this long fails
	m          *metrics
	now        func() time.Time
	checks     singleflight.Group // revalidations of spooled blobs, by digest
	downloads  sync.WaitGroup     // downloads' writers running in the background
}

var (
	_ content.Store           = (*Store)(nil)
	_ content.Walker          = (*Store)(nil)
	_ content.PendingIngester = (*Store)(nil)
	_ content.LocalIngester   = (*Store)(nil)
)

// Close waits for the downloads still running in the background (each
// ends within the stall timeout) to leave their file in the spool or
// remove it. The Store is not used afterwards.
func (s *Store) Close() error {
	s.downloads.Wait()
	return nil
}

// Option changes a Store's settings.
type Option func(*Store)

// WithSpoolLimit bounds the local spool to n bytes (default 10 GiB). A blob
// larger than that is streamed through a temporary file instead.
func WithSpoolLimit(n int64) Option { return func(s *Store) { s.spoolLimit = n } }

// WithBlockSize sets the size of the blocks an ingest stages while bytes
// arrive (default 8 MiB); blobs up to one block go up in one request.
func WithBlockSize(n int64) Option { return func(s *Store) { s.block = n } }

// WithRevalidate sets how long a spooled blob is served before the
// container is asked again whether it still has it (default 30 s; 0 asks
// on every Open, Opens at the same moment sharing one request). It bounds
// how long a replica serves a blob another replica deleted.
func WithRevalidate(d time.Duration) Option { return func(s *Store) { s.revalidate = d } }

// WithRegisterer registers the spool's metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Store) { s.m.reg = reg }
}

// New returns a store on the container ctr with its local files (ingests
// in progress and the spool) under dir. Ingest files a crash left behind
// are removed: they were never committed.
func New(ctr *azure.Container, dir string, opts ...Option) (*Store, error) {
	s := &Store{
		ctr: ctr, ingestDir: filepath.Join(dir, "ingest"),
		spoolLimit: DefaultSpoolLimit, block: DefaultBlockSize,
		revalidate: DefaultRevalidate, stall: downloadStall, m: &metrics{}, now: time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.block < 1<<10 || s.block > 4000<<20 {
		return nil, fmt.Errorf("azstore: block size %d: want 1 KiB to 4000 MiB", s.block)
	}
	if s.spoolLimit < 0 || s.revalidate < 0 {
		return nil, errors.New("azstore: negative spool limit or revalidation interval")
	}
	if err := s.m.register(); err != nil {
		return nil, fmt.Errorf("azstore: metrics: %w", err)
	}
	if err := os.RemoveAll(s.ingestDir); err != nil {
		return nil, fmt.Errorf("azstore: clean ingest: %w", err)
	}
	if err := os.MkdirAll(s.ingestDir, 0o755); err != nil {
		return nil, fmt.Errorf("azstore: %w", err)
	}
	var err error
	if s.spool, err = newSpool(filepath.Join(dir, "spool"), s.spoolLimit, s.m); err != nil {
		return nil, err
	}
	return s, nil
}

// blobName is where d lives in the container; d must have been validated.
func blobName(d digest.Digest) string {
	return prefix + string(d.Algorithm()) + "/" + d.Encoded()
}

// notFound adds content.ErrNotFound to an error that wraps azure.ErrNotFound.
func notFound(d digest.Digest, err error) error {
	if errors.Is(err, azure.ErrNotFound) {
		return fmt.Errorf("%w: %s: %w", content.ErrNotFound, d, err)
	}
	return err
}

// tempFile creates a file in the ingest directory.
func (s *Store) tempFile(kind string) (*os.File, string, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", fmt.Errorf("azstore: %w", err)
	}
	name := filepath.Join(s.ingestDir, kind+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("azstore: %w", err)
	}
	return f, name, nil
}

// Open implements content.Provider. A spooled blob is its *os.File; a blob
// not spooled yet is downloaded into the spool once, and the reader
// returned follows that download, reaching EOF only once the bytes are
// verified. Errors wrap content.ErrNotFound if the container has no such
// blob; an unreachable container is another error, never ErrNotFound.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, content.Info, error) {
	if err := content.ValidateLookup(d); err != nil {
		return nil, content.Info{}, err
	}
	f, e := s.spool.open(d)
	if f == nil {
		return s.fetch(ctx, d)
	}
	if now := s.now(); now.Sub(e.checked) >= s.revalidate {
		p, err := s.check(ctx, d, now)
		switch {
		case errors.Is(err, azure.ErrNotFound):
			f.Close()
			return nil, content.Info{}, notFound(d, err)
		case err == nil:
			e.mod = p.LastModified
		}
		// The container could not be asked: the verified copy is served,
		// and the next Open asks again.
	}
	s.m.hits.Inc()
	return f, content.Info{Digest: d, Size: e.size, ModTime: e.mod}, nil
}

// check asks the container whether it still has the spooled blob d, as of
// now, and records the answer in the spool (dropping d if it is gone):
// one request for every Open that needs it at once. The answer is
// recorded before the request leaves the flight, so an Open coming later
// finds d confirmed (or gone) and asks nothing.
func (s *Store) check(ctx context.Context, d digest.Digest, now time.Time) (azure.Props, error) {
	ch := s.checks.DoChan(string(d), func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
		defer cancel()
		p, err := s.ctr.Stat(cctx, blobName(d))
		switch {
		case errors.Is(err, azure.ErrNotFound):
			s.spool.drop(d)
		case err == nil:
			s.spool.confirmed(d, p.LastModified, now)
		}
		return p, err
	})
	select {
	case r := <-ch:
		p, _ := r.Val.(azure.Props)
		return p, r.Err
	case <-ctx.Done():
		return azure.Props{}, ctx.Err()
	}
}

// Stat implements content.Provider. It always asks the container, which
// is the truth every replica shares (a garbage collector compares its
// ModTime).
func (s *Store) Stat(ctx context.Context, d digest.Digest) (content.Info, error) {
	if err := content.ValidateLookup(d); err != nil {
		return content.Info{}, err
	}
	p, err := s.ctr.Stat(ctx, blobName(d))
	if err != nil {
		return content.Info{}, notFound(d, err)
	}
	s.spool.confirmed(d, p.LastModified, s.now())
	return content.Info{Digest: d, Size: p.Size, ModTime: p.LastModified}, nil
}

// Delete implements content.Deleter: the blob leaves the container and
// this replica's spool. Other replicas stop serving their spooled copy
// within their revalidation interval.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := content.ValidateLookup(d); err != nil {
		return err
	}
	s.spool.drop(d)
	return notFound(d, s.ctr.Delete(ctx, blobName(d), azure.Cond{}))
}

// Walk implements content.Walker over the container's blobs/ prefix.
func (s *Store) Walk(ctx context.Context, fn func(content.Info) error) error {
	pfx := prefix
	pager := s.ctr.Client().NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &pfx})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return azure.Classify("list", prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			alg, hexPart, ok := strings.Cut(strings.TrimPrefix(azure.Value(b.Name), prefix), "/")
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hexPart)
			if !ok || content.ValidateDigest(d) != nil || b.Properties == nil {
				continue // not ours; leave it alone
			}
			info := content.Info{Digest: d, Size: azure.Value(b.Properties.ContentLength), ModTime: azure.Value(b.Properties.LastModified)}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

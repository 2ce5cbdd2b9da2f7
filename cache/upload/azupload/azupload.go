// Package azupload keeps blob upload sessions in Azure Blob Storage, shared
// by every replica on the container, so that a push started on one
// replica goes on and is committed on another (POST on r1, PATCH on r1 and
// r2, PUT on r3).
//
// # Where a session lives
//
// A session is two blobs: its record in the shared index (azmeta's
// Uploads: meta/u/<id>!, holding the repository, the client, the digest
// algorithm, the size and the running hash's state, marshalled with
// encoding.BinaryMarshaler) and its bytes, the append blob uploads/<id>.
// A chunk appends blocks of up to 4 MiB at the size the record holds
// (Append Block with the append position condition), hashing them as
// they go, then records the new size and hash state (If-Match the
// record's ETag). Commit finishes the hash from the stored state, with no
// read of the bytes, compares it with the digest, and publishes the bytes
// into the content store: by a copy inside the storage account when the
// store can (content.Copier: Copy Blob, which Azurite has too; Azurite
// lacks Put Block From URL), else by streaming them once through this
// replica into an ingest. It then deletes the record and the append blob.
//
// # One request at a time
//
// The append blob's lease (15 s, renewed while a request runs) is the
// session's lock, across replicas: Append, Commit, Cancel and the expiry
// take it, and every append carries it, so a request that lost it (its
// replica stalled) writes nothing more. An append that finds the lease
// held by another request is refused at once with upload.ErrOffset (OCI:
// 416): two replicas never interleave chunks, one wins and the client
// asks where the upload stands. Commit and Cancel wait for it. A replica
// that dies mid-chunk leaves bytes past the recorded size; its lease
// expires within 15 s and the next holder adopts them (reads them back,
// hashes them, records them): they are what that request received, as a
// broken body keeps what arrived.
//
// # Limits
//
// The idle timeout holds cluster-wide: a session whose record was last
// written longer ago than the timeout (by any replica's clock) is unknown
// to Open on every replica, and Run, on every replica, deletes such
// sessions (those whose lease nobody holds) and append blobs left without
// a record. The caps on open sessions count the records, cluster-wide, at
// each start; two replicas starting sessions at the same instant may each
// take the last slot (the caps can be passed by up to one session per
// other replica).
package azupload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	_ "crypto/sha256" // register digest algorithms
	_ "crypto/sha512"
)

// DataPrefix is where the sessions' append blobs live in the container.
const DataPrefix = "uploads/"

// DefaultBlockSize is the largest block one append sends: the limit of
// every service version.
const DefaultBlockSize = 4 << 20

// sessionLease is how long a request's hold on a session lasts unrenewed:
// the service's minimum, so a dead replica's hold ends soon.
const sessionLease = azure.MinLease

// Index is what the store needs of the shared index: the session records.
type Index interface {
	azmeta.Uploads
	azmeta.UploadLister
}

// Store is the shared session store of one replica. It is safe for
// concurrent use; any number of replicas share the container.
type Store struct {
	ctr   *azure.Container
	idx   Index
	dst   content.Ingester
	log   *zap.Logger
	lim   upload.Limits
	now   func() time.Time
	block int
	copy  bool

	bufs     sync.Pool
	open     atomic.Int64 // sessions open cluster-wide, as last listed
	expired  atomic.Int64
	noCopyMu sync.Once
}

var _ upload.Store = (*Store)(nil)

// Option changes a Store's settings.
type Option func(*Store)

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithBlockSize sets the largest block one append sends (default 4 MiB).
func WithBlockSize(n int) Option { return func(s *Store) { s.block = n } }

// WithoutServerCopy makes Commit stream the bytes through this replica
// even when the content store could copy them inside the account.
func WithoutServerCopy() Option { return func(s *Store) { s.copy = false } }

// New returns the session store on ctr, with records in idx, publishing
// committed blobs into dst (the content store the engine reads, on the
// same container; it copies inside the account when it is a
// content.Copier).
func New(ctr *azure.Container, idx Index, dst content.Ingester, log *zap.Logger, l upload.Limits, opts ...Option) (*Store, error) {
	if ctr == nil || idx == nil || dst == nil {
		return nil, errors.New("azupload: a container, an index and a content store are required")
	}
	s := &Store{ctr: ctr, idx: idx, dst: dst, log: log, lim: l.Resolved(), now: time.Now, block: DefaultBlockSize, copy: true}
	for _, o := range opts {
		o(s)
	}
	if s.block < 1 || s.block > DefaultBlockSize {
		return nil, fmt.Errorf("azupload: block size %d: want 1 to %d bytes", s.block, DefaultBlockSize)
	}
	s.bufs.New = func() any { b := make([]byte, s.block); return &b }
	return s, nil
}

// dataName is the append blob of session id.
func dataName(id string) string { return DataPrefix + id }

// validID accepts the IDs upload.NewID makes.
func validID(id string) bool {
	return len(id) == 32 && strings.Trim(id, "0123456789abcdef") == ""
}

// expiredAt reports whether a session last written at updated is idle
// past the timeout.
func (s *Store) expiredAt(updated time.Time) bool {
	return s.now().Sub(updated) > s.lim.Timeout
}

// Start implements upload.Store: it counts the open sessions against the
// caps, creates the append blob, then the record.
func (s *Store) Start(ctx context.Context, o upload.Options) (upload.Session, error) {
	alg := o.Algorithm
	if alg == "" {
		alg = digest.Canonical
	}
	if !alg.Available() {
		return nil, fmt.Errorf("azupload: %w: %s", content.ErrUnsupportedDigest, alg)
	}
	total, mine := 0, 0
	err := s.idx.EachUpload(ctx, func(_ string, u azmeta.Upload) error {
		if !s.expiredAt(u.Updated) {
			total++
			if o.Client != "" && u.Client == o.Client {
				mine++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("azupload: count sessions: %w", err)
	}
	s.open.Store(int64(total))
	if err := s.lim.Check(total, mine, o.Client); err != nil {
		return nil, err
	}
	state, err := marshalHash(alg.Hash())
	if err != nil {
		return nil, err
	}
	id := upload.NewID()
	data := dataName(id)
	_, err = s.ctr.Client().NewAppendBlobClient(data).Create(ctx, &appendblob.CreateOptions{
		AccessConditions: azure.Cond{IfNoneMatch: azcore.ETagAny}.Access(),
	})
	if err != nil {
		return nil, fmt.Errorf("azupload: start: %w", azure.Classify("create", data, err))
	}
	now := s.now().UTC()
	rec := azmeta.Upload{Repo: o.Repo, Client: o.Client, Algorithm: alg, Hash: state, Data: data, Started: now, Updated: now}
	if _, err := s.idx.CreateUpload(ctx, id, rec); err != nil {
		if derr := s.ctr.Delete(context.WithoutCancel(ctx), data, azure.Cond{}); derr != nil {
			s.log.Warn("upload: delete the data of a session not started; the sweep will", zap.String("upload", id), zap.Error(derr))
		}
		return nil, fmt.Errorf("azupload: start: %w", err)
	}
	s.open.Add(1)
	return s.session(id, rec), nil
}

// Open implements upload.Store: it reads the record. A session idle past
// the timeout is unknown, and discarded if nobody holds it.
func (s *Store) Open(ctx context.Context, id string) (upload.Session, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", upload.ErrUnknown, id)
	}
	rec, _, err := s.idx.Upload(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", upload.ErrUnknown, id)
	}
	if err != nil {
		return nil, fmt.Errorf("azupload: %w", err)
	}
	if s.expiredAt(rec.Updated) {
		if err := s.expire(ctx, id); err != nil {
			s.log.Warn("upload: discard an expired session", zap.String("upload", id), zap.Error(err))
		}
		return nil, fmt.Errorf("%w: %s (idle since %s)", upload.ErrUnknown, id, rec.Updated.Format(time.RFC3339))
	}
	return s.session(id, rec), nil
}

// Stats implements upload.Store: the sessions open in the cluster as the
// last start or sweep here listed them, and the expirations this replica
// carried out.
func (s *Store) Stats() upload.Stats {
	return upload.Stats{Open: int(max(s.open.Load(), 0)), Expired: s.expired.Load()}
}

func (s *Store) session(id string, rec azmeta.Upload) *session {
	ss := &session{st: s, id: id, repo: rec.Repo}
	ss.size.Store(rec.Size)
	return ss
}

package azmeta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

var (
	// ErrExists means a create-only record (an upload session, a secret)
	// exists already.
	ErrExists = errors.New("azmeta: already exists")
	// ErrChanged means a record changed since the version a conditional
	// write was based on: another replica wrote it first.
	ErrChanged = errors.New("azmeta: changed since it was read")
)

// Version identifies one state of a record, for compare-and-swap (the
// blob's ETag). The zero Version matches any state.
type Version string

// Upload is the shared record of a blob upload session, so that a push
// started on one replica can go on and be committed on another (a chunk
// on r1, the next chunk and the commit on r2).
type Upload struct {
	Repo      string           `json:"repo"`
	Client    string           `json:"client,omitempty"`
	Algorithm digest.Algorithm `json:"alg"`
	// Size is how many bytes the session holds.
	Size int64 `json:"size"`
	// Hash is the running hash's state over those bytes (the hash's
	// encoding.BinaryMarshaler output), so the replica taking the next
	// chunk resumes hashing without reading the bytes back.
	Hash []byte `json:"hash,omitempty"`
	// Data names where the bytes are (the content store's pending blob).
	Data    string    `json:"data,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// Uploads keeps upload sessions in the shared store. Sessions are never
// cached: every call asks Azure.
type Uploads interface {
	// CreateUpload records a new session under id and returns its
	// version; errors wrap ErrExists if id is taken.
	CreateUpload(ctx context.Context, id string, u Upload) (Version, error)
	// Upload returns the session and its version, or an error wrapping
	// meta.ErrNotFound.
	Upload(ctx context.Context, id string) (Upload, Version, error)
	// UpdateUpload replaces the session if it is still at version v and
	// returns the new version. Errors wrap ErrChanged if another write
	// came first (a chunk taken by another replica), meta.ErrNotFound if
	// the session is gone.
	UpdateUpload(ctx context.Context, id string, u Upload, v Version) (Version, error)
	// DeleteUpload ends the session if it is still at version v (any
	// version for ""). Errors wrap meta.ErrNotFound if it is gone,
	// ErrChanged if it moved past v.
	DeleteUpload(ctx context.Context, id string, v Version) error
}

// UploadLister lists the sessions of every replica, to expire abandoned
// ones.
type UploadLister interface {
	// EachUpload calls fn for every session, in no particular order, and
	// stops at fn's first error.
	EachUpload(ctx context.Context, fn func(id string, u Upload) error) error
}

// CreateUpload implements Uploads.
func (x *Index) CreateUpload(ctx context.Context, id string, u Upload) (Version, error) {
	etag, err := x.put(ctx, uploadName(id), u, azure.Cond{IfNoneMatch: azcore.ETagAny})
	if errors.Is(err, azure.ErrExists) {
		err = fmt.Errorf("%w: upload %s: %w", ErrExists, id, err)
	}
	return Version(etag), wrap("create upload", err)
}

// Upload implements Uploads.
func (x *Index) Upload(ctx context.Context, id string) (Upload, Version, error) {
	var u Upload
	etag, err := x.getJSON(ctx, uploadName(id), &u)
	return u, Version(etag), wrap("upload", err)
}

// UpdateUpload implements Uploads.
func (x *Index) UpdateUpload(ctx context.Context, id string, u Upload, v Version) (Version, error) {
	if v == "" {
		return "", fmt.Errorf("meta: update upload %s: no version to update", id)
	}
	etag, err := x.put(ctx, uploadName(id), u, azure.Cond{IfMatch: azcore.ETag(v)})
	return Version(etag), wrap("update upload", x.changed(ctx, id, err))
}

// DeleteUpload implements Uploads.
func (x *Index) DeleteUpload(ctx context.Context, id string, v Version) error {
	return wrap("delete upload", x.changed(ctx, id, x.del(ctx, uploadName(id), azure.Cond{IfMatch: azcore.ETag(v)})))
}

// changed tells apart the two reasons a conditional write of a session
// fails: the service answers 412 both when the session moved on and, for
// some operations, when it is gone.
func (x *Index) changed(ctx context.Context, id string, err error) error {
	if !errors.Is(err, azure.ErrConditionNotMet) {
		return notFound(err)
	}
	_, serr := x.ctr.Stat(ctx, uploadName(id))
	x.m.request("stat", serr)
	if errors.Is(serr, azure.ErrNotFound) {
		return fmt.Errorf("upload %s: %w: %w", id, meta.ErrNotFound, serr)
	}
	return fmt.Errorf("%w: upload %s: %w", ErrChanged, id, err)
}

// EachUpload implements UploadLister.
func (x *Index) EachUpload(ctx context.Context, fn func(id string, u Upload) error) error {
	return wrap("uploads", each(ctx, x, kUpload, kindPrefix(kUpload), func(parts []string, _ azcore.ETag, u Upload) error {
		if len(parts) != 1 {
			return nil
		}
		return fn(parts[0], u)
	}))
}

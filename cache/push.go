package cache

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors of the push abilities.
var (
	// ErrManifestBlobUnknown means a pushed manifest refers to a blob or
	// child manifest the repository does not hold.
	ErrManifestBlobUnknown = errors.New("manifest references a blob or manifest unknown to the repository")
	// ErrUploadUnknown means the upload session does not exist: it ended,
	// expired, or belongs to another repository.
	ErrUploadUnknown = errors.New("blob upload unknown to registry")
	// ErrRangeInvalid means a chunk does not start where the upload ends.
	ErrRangeInvalid = errors.New("invalid content range")
)

// The push abilities below are optional: a Source that implements them
// makes the registry a writable one for repositories not under a cache
// rule. Every method returns an error wrapping ErrDenied for a repository
// under a cache rule, ErrNameInvalid for an invalid repository name, and
// ErrUnsupported if the content store cannot take writes.

// UploadOptions describe a new upload session.
type UploadOptions struct {
	// Client identifies who starts the session (a user, or an address),
	// for the cap on open sessions per client. "" is not capped.
	Client string
	// Algorithm is the digest algorithm the client will finish with, when
	// it is known up front ("" means sha256). Bytes are hashed with it as
	// they arrive; finishing with another algorithm costs a re-read.
	Algorithm digest.Algorithm
}

// Upload is one blob upload session. A session outlives the request that
// started it; later requests find it again with BlobUploader.Upload. Calls
// on one session are serialized.
type Upload interface {
	// ID names the session in upload URLs.
	ID() string
	// Size is the number of bytes received so far.
	Size() int64
	// Append streams r into the session. offset must equal Size, else the
	// error wraps ErrRangeInvalid and nothing is written. It returns the
	// bytes taken, also on error (a broken body keeps what arrived).
	Append(ctx context.Context, offset int64, r io.Reader) (int64, error)
	// Commit ends the session: it checks the bytes against d, stores the
	// blob and links it to the session's repository, returning its size.
	// A mismatch wraps ErrDigestInvalid; the session ends either way.
	Commit(ctx context.Context, d digest.Digest) (int64, error)
	// Cancel ends the session and discards its bytes.
	Cancel(ctx context.Context) error
}

// BlobUploader accepts blob uploads.
type BlobUploader interface {
	// StartUpload opens an upload session in repo. It wraps
	// ErrTooManyRequests when the client has too many sessions open.
	StartUpload(ctx context.Context, repo string, o UploadOptions) (Upload, error)
	// Upload returns the open session id of repo, or an error wrapping
	// ErrUploadUnknown.
	Upload(ctx context.Context, repo, id string) (Upload, error)
	// Mount links blob d, held by repository from ("" = any repository),
	// to repo without a transfer and returns its size. It wraps
	// ErrBlobUnknown if from does not hold d.
	Mount(ctx context.Context, repo, from string, d digest.Digest) (int64, error)
}

// PushedManifest is what storing a pushed manifest produced.
type PushedManifest struct {
	Digest digest.Digest
	// Subject is the manifest's subject, if it has one: the manifest is
	// now among the subject's referrers.
	Subject digest.Digest
}

// ManifestPutter accepts pushed manifests.
type ManifestPutter interface {
	// PutManifest stores body, exactly as sent, as the manifest ref (a tag
	// or a digest) of repo, and points every tag in tags at it too.
	// mediaType is the request's Content-Type. It wraps ErrManifestInvalid
	// for a body that is not a manifest or is too large, ErrDigestInvalid
	// when ref is a digest the body does not match, ErrTagInvalid for a bad
	// tag, and ErrManifestBlobUnknown when a referenced blob or child
	// manifest is not in repo. A subject need not exist.
	PutManifest(ctx context.Context, repo, ref, mediaType string, body []byte, tags []string) (*PushedManifest, error)
}

// Deleter deletes pushed content.
type Deleter interface {
	// DeleteManifest removes ref from repo: for a tag, only the tag; for a
	// digest, the manifest and every tag pointing at it. It wraps
	// ErrManifestUnknown if there is no such tag or manifest.
	DeleteManifest(ctx context.Context, repo, ref string) error
	// DeleteBlob unlinks blob d from repo; it wraps ErrBlobUnknown if repo
	// does not hold it. The bytes stay in the store for other repositories
	// until garbage collection.
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error
}

// Package cache is the contract between the registry front end and the
// content behind it: what a pull needs (manifests, blobs, listings,
// referrers), its types and its sentinel errors. The pull-through engine
// (cache/engine) implements it; the registry depends only on this package.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Implementations wrap them with %w and the name, reference
// or digest; the registry maps each to its OCI error code.
var (
	ErrNameUnknown     = errors.New("repository name not known to registry")
	ErrNameInvalid     = errors.New("invalid repository name")
	ErrTagInvalid      = errors.New("invalid tag")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrManifestInvalid = errors.New("manifest invalid")
	ErrBlobUnknown     = errors.New("blob unknown to registry")
	ErrDigestInvalid   = errors.New("provided digest did not match uploaded content")
	ErrDenied          = errors.New("requested access to the resource is denied")
	ErrUnsupported     = errors.New("the operation is unsupported")
	// ErrUnavailable means the upstream could not be reached or failed and
	// nothing usable is cached. It is never reported as "unknown".
	ErrUnavailable = errors.New("upstream unavailable")
	// ErrTooManyRequests means the upstream throttled the request.
	ErrTooManyRequests = errors.New("too many requests")
)

// UpstreamError carries what the registry needs to answer a failed fill:
// the sentinel (ErrUnavailable or ErrTooManyRequests) and when to retry.
type UpstreamError struct {
	Err        error
	RetryAfter time.Duration
	Cause      error
}

func (e *UpstreamError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%v: %v", e.Err, e.Cause)
	}
	return e.Err.Error()
}

// Unwrap exposes the sentinel and the cause to errors.Is/As.
func (e *UpstreamError) Unwrap() []error { return []error{e.Err, e.Cause} }

// Manifest is a manifest ready to serve. Body is exactly the bytes the
// upstream or the pusher sent; it is nil for a HEAD.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Body      []byte
	// FromUpstream is true when this response was fetched from the upstream
	// for this request (ACR marks it with X-Azure-Origin: upstream).
	FromUpstream bool
}

// Blob is a blob ready to serve. Content is nil for a HEAD.
type Blob struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
	// Content reads the blob. For a committed blob in a filesystem store it
	// is an *os.File, so net/http can use sendfile. The caller closes it.
	Content io.ReadSeekCloser
	// Wait is nil for a committed blob. For a blob still being filled from
	// the upstream, Wait blocks until the fill has verified the digest and
	// returns nil, or returns the fill's error: a response must not send
	// its final byte before Wait returns nil.
	Wait         func(ctx context.Context) error
	FromUpstream bool
}

// Referrers is an OCI image index listing the manifests whose subject is
// the requested digest.
type Referrers struct {
	Body []byte
	// Filtered is true when the list was filtered by artifactType.
	Filtered bool
}

// ManifestSource serves manifests.
type ManifestSource interface {
	// Manifest returns the manifest ref (a tag or a digest) of repo, with
	// its body unless head is true.
	Manifest(ctx context.Context, repo, ref string, head bool) (*Manifest, error)
}

// BlobSource serves blobs.
type BlobSource interface {
	// Blob returns the blob d of repo, with its content unless head is true.
	// It validates d: ErrDigestInvalid for a malformed or unsupported one.
	Blob(ctx context.Context, repo string, d digest.Digest, head bool) (*Blob, error)
}

// Lister lists what is held locally.
type Lister interface {
	// Tags lists repo's tags in lexical order after last, at most n (n <= 0:
	// all), and whether more follow. ErrNameUnknown if repo has none.
	Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error)
	// Catalog lists repositories the same way.
	Catalog(ctx context.Context, last string, n int) ([]string, bool, error)
}

// ReferrersSource answers the referrers API.
type ReferrersSource interface {
	// Referrers returns the referrers of d in repo, filtered by
	// artifactType when it is not empty. It never returns "unknown": no
	// referrers is an empty index.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) (*Referrers, error)
}

// Source is everything a pull needs.
type Source interface {
	ManifestSource
	BlobSource
	Lister
	ReferrersSource
}

// RuleMatcher is an optional ability of a Source: telling which
// repositories are caches of an upstream (and so read-only).
type RuleMatcher interface {
	// CacheRule returns the name of the rule covering repo, if any.
	CacheRule(repo string) (rule string, ok bool)
}

// Package upstream is the contract for fetching from an upstream registry
// (MAR or any OCI registry): the client interface, its types and errors.
// ociclient implements it over go-containerregistry's transports; the MAR
// emulator lives in upstream/mar.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrNotFound means the upstream answered 404 for the object.
var ErrNotFound = errors.New("upstream: not found")

// Credentials are a credential set's username and password. String never
// shows the password.
type Credentials struct {
	Username string
	Password string
}

func (c Credentials) String() string {
	if c.Username == "" {
		return "anonymous"
	}
	return c.Username + ":<redacted>"
}

// Repo names an upstream repository and how to authenticate to it.
type Repo struct {
	Host string // registry host as written in the rule, e.g. mcr.microsoft.com
	Name string // repository path without the host
	Auth Credentials
}

func (r Repo) String() string { return r.Host + "/" + r.Name }

// Manifest is an upstream manifest. Body is nil for a HEAD.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Body      []byte
}

// BlobBody is an upstream blob response body.
type BlobBody struct {
	Body io.ReadCloser
	// Offset is where Body starts in the blob: the requested offset, or 0
	// when the upstream ignored the Range request.
	Offset int64
	// Size is the blob's total size, or -1 when the upstream did not say.
	Size int64
}

// Referrers is an upstream referrers response (an OCI image index).
type Referrers struct {
	Body      []byte
	MediaType string
	// Filtered is true when the upstream applied the artifactType filter.
	Filtered bool
}

// Client fetches from upstream registries.
type Client interface {
	// Manifest fetches a manifest by tag or digest (its body unless head).
	// A body fetched by digest is verified against it.
	Manifest(ctx context.Context, r Repo, ref string, head bool) (Manifest, error)
	// Blob starts a GET of blob d from offset (a Range request when > 0;
	// size, when >= 0, is the blob's known size, for a closed range).
	Blob(ctx context.Context, r Repo, d digest.Digest, offset, size int64) (BlobBody, error)
	// StatBlob returns the blob's size with a HEAD.
	StatBlob(ctx context.Context, r Repo, d digest.Digest) (int64, error)
	// Referrers fetches the referrers index of d, filtered by artifactType
	// when the upstream supports it.
	Referrers(ctx context.Context, r Repo, d digest.Digest, artifactType string) (Referrers, error)
	// Tags lists the repository's tags, every page of them (following the
	// upstream's pagination), in the order the upstream gave. It returns
	// an error wrapping ErrNotFound if the upstream does not know the
	// repository.
	Tags(ctx context.Context, r Repo) ([]string, error)
}

// Error is a failed upstream request. It wraps ErrNotFound for a 404.
type Error struct {
	Repo       string
	StatusCode int // 0 when no response was received
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("upstream %s: %v", e.Repo, e.Err)
	}
	return fmt.Sprintf("upstream %s: %d %s: %v", e.Repo, e.StatusCode, http.StatusText(e.StatusCode), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Temporary reports whether retrying later may succeed: no response, 408,
// 429 or a 5xx.
func (e *Error) Temporary() bool {
	switch {
	case e.StatusCode == 0, e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode == http.StatusTooManyRequests, e.StatusCode >= 500:
		return true
	}
	return false
}

// Throttled reports whether the upstream answered 429.
func (e *Error) Throttled() bool { return e.StatusCode == http.StatusTooManyRequests }

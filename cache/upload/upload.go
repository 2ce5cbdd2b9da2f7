// Package upload is the contract of where blob upload sessions live
// between the requests of a push: in the process (memupload, the embedded
// default) or in a store every replica shares (azupload), so that a push
// started on one replica can go on and be committed on another. A session
// takes the bytes of one blob whose digest is known only at the end,
// hashes them as they arrive and, on Commit, publishes them into the
// content store; linking the blob to its repository is the caller's.
// uploadtest is the suite every implementation runs.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// Sentinel errors of the contract; check them with errors.Is.
var (
	// ErrUnknown means the session does not exist: it ended, expired or
	// never did.
	ErrUnknown = errors.New("upload: unknown session")
	// ErrOffset means a chunk does not start where the session ends, or
	// another request is appending to the session right now: nothing of
	// the chunk was written (OCI: 416 Requested Range Not Satisfiable).
	ErrOffset = errors.New("upload: chunk does not start where the upload ends")
	// ErrTooMany means a cap on open sessions (in all, or of one client)
	// is reached.
	ErrTooMany = errors.New("upload: too many open sessions")
)

// Options describe a new session.
type Options struct {
	// Repo is the repository the blob is pushed to; the store keeps it for
	// the caller (Session.Repo) and does not check it.
	Repo string
	// Client identifies who starts the session (a user or an address),
	// for the cap per client; "" is not capped.
	Client string
	// Algorithm hashes the bytes as they arrive (digest.Canonical when
	// empty). Committing with another algorithm reads the bytes again.
	Algorithm digest.Algorithm
}

// Store keeps upload sessions. It is safe for concurrent use.
type Store interface {
	// Start opens a session. Errors wrap ErrTooMany when a cap is
	// reached, content.ErrUnsupportedDigest for an algorithm the store
	// cannot hash.
	Start(ctx context.Context, o Options) (Session, error)
	// Open returns the session id, or an error wrapping ErrUnknown; a
	// session idle for longer than the store's timeout is unknown.
	Open(ctx context.Context, id string) (Session, error)
	// Stats reports the sessions open and expired, for metrics.
	Stats() Stats
}

// Stats are a store's counts.
type Stats struct {
	// Open is the number of sessions open now, as far as this process
	// knows (a shared store: as its last listing found).
	Open int
	// Expired counts the sessions this process discarded for staying
	// idle past the timeout.
	Expired int64
}

// Session is one upload. A Session value may be used by one request at a
// time; calls on one session, through any values and processes, are
// serialized by the store (Append refuses to wait, see ErrOffset).
type Session interface {
	// ID names the session: 32 lowercase hex digits.
	ID() string
	// Repo is Options.Repo.
	Repo() string
	// Size is how many bytes the session holds, as of the last call.
	Size() int64
	// Append streams r into the session at offset. offset must be Size
	// (as the store knows it now), else the error wraps ErrOffset and
	// nothing is written; the same holds while another request appends.
	// It returns the bytes taken, also on error: a broken body keeps what
	// arrived. Errors wrap ErrUnknown if the session ended, and
	// content.ErrNoRoom if a quota has no room for the bytes.
	Append(ctx context.Context, offset int64, r io.Reader) (int64, error)
	// Commit checks that the bytes hash to d and publishes them into the
	// content store as the blob d (a blob already there is success), and
	// ends the session, whatever the outcome. A mismatch is a
	// *content.MismatchError, a digest of an algorithm the store cannot
	// compute wraps content.ErrUnsupportedDigest, a quota without room
	// content.ErrNoRoom.
	Commit(ctx context.Context, d digest.Digest) (content.Info, error)
	// Cancel ends the session and discards its bytes. Errors wrap
	// ErrUnknown if it had ended.
	Cancel(ctx context.Context) error
}

// Defaults of Limits.
const (
	DefaultTimeout      = 15 * time.Minute
	DefaultMaxPerClient = 32
	DefaultMaxTotal     = 1024
)

// Limits bound a store's sessions; a zero field takes its default.
type Limits struct {
	// Timeout is how long a session may stay idle (no call that changes
	// it) before it is discarded with its bytes.
	Timeout time.Duration
	// MaxPerClient caps the sessions one client may hold open.
	MaxPerClient int
	// MaxTotal caps the sessions open at once.
	MaxTotal int
}

// Resolved returns l with the defaults filled in.
func (l Limits) Resolved() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxPerClient <= 0 {
		l.MaxPerClient = DefaultMaxPerClient
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultMaxTotal
	}
	return l
}

// Check returns an error wrapping ErrTooMany if one more session of
// client does not fit beside total open sessions, ofClient of them the
// client's.
func (l Limits) Check(total, ofClient int, client string) error {
	if total >= l.MaxTotal {
		return fmt.Errorf("%w: %d sessions are open", ErrTooMany, total)
	}
	if client != "" && ofClient >= l.MaxPerClient {
		return fmt.Errorf("%w: this client has %d sessions open", ErrTooMany, ofClient)
	}
	return nil
}

// NewID returns a new random session ID: 32 lowercase hex digits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand's contract since Go 1.24)
	return hex.EncodeToString(b[:])
}

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Several replicas sharing one content store and one index (WithCluster)
// fetch each object from the upstream once for all of them. Every key has
// an owner among the live replicas: a blob's digest, a tag's repo:tag, a
// manifest's repo@digest, a repository's tag listing its name.
//
// Blobs. A miss on a replica that does not own the digest starts one relay
// fill per digest on that replica: its bytes come from the owner (which
// answers as it answers a client: from its store, or from the fill it
// runs), are verified here and kept in this replica's spool only, and the
// replica's waiters follow it as they follow an upstream fill. The owner,
// or any replica a peer relayed a request to, claims the blob's fill
// record first: with the claim it fills from the upstream into the shared
// store; when another replica holds the claim it relays from that one (the
// record decides when views of the membership disagree). A relay that
// breaks mid-way (the replica it came from died) goes on from the offset
// reached: from the new owner, or, when that is this replica, from the
// upstream with this replica's bytes so far shared into the store (a
// takeover). A claim lost mid-fill fails the fill: another replica holds
// the blob now, and the clients retry.
//
// Manifests and tag listings. A replica that does not own the key asks the
// owner, which runs the normal path (one upstream request however many ask,
// the shared index written once) and answers; the asking replica serves
// the answer and keeps the manifest body in memory. When the owner cannot
// be reached the replica does the work itself.

// Cluster is the engine's view of the replicas it shares its store and
// index with. cache/cluster provides it, through an adapter where serve
// wires the two (the engine does not know that package).
type Cluster interface {
	// Owner returns the live replica owning key and whether that is this
	// replica; "" when none is live (the engine then acts alone).
	Owner(key string) (peer string, self bool)
	// Relayed reports whether ctx serves a request a peer relayed to this
	// replica: it is answered here, never relayed to an owner again.
	Relayed(ctx context.Context) bool
	// ClaimFill decides who fills blob d from the upstream: a claim when
	// this replica does now; else the live replica holding the claim, ""
	// when this very replica still holds one from a fill that has not let
	// go (it expires within the lease).
	ClaimFill(ctx context.Context, d digest.Digest) (FillClaim, string, error)
	// Blob asks peer for the blob d of repo from offset (the whole blob
	// with 0), or with head only for its size. The answer's Size is the
	// blob's. Errors are upstream's: an *upstream.Error with the peer's
	// status (wrapping upstream.ErrNotFound for 404), or with status 0
	// when the peer could not be reached or its answer broke off.
	Blob(ctx context.Context, peer, repo string, d digest.Digest, offset int64, head bool) (upstream.BlobBody, error)
	// Manifest asks peer for the manifest ref of repo, its body verified
	// against its digest (none with head). Errors as Blob's.
	Manifest(ctx context.Context, peer, repo, ref string, head bool) (upstream.Manifest, error)
	// Tags asks peer for repo's tags after last, at most n (n <= 0: all),
	// and whether more follow. Errors as Blob's.
	Tags(ctx context.Context, peer, repo, last string, n int) ([]string, bool, error)
}

// FillClaim is this replica's hold on a blob's fill record: while it
// lasts, this replica alone fills the blob from the upstream.
type FillClaim interface {
	// Takeover reports whether the claim was taken from another holder
	// (which died or stalled).
	Takeover() bool
	// Progress records that the first verified bytes are written. It is
	// the fence passed right before the blob is published: it fails once
	// another replica holds the record.
	Progress(ctx context.Context, verified int64) error
	// Lost is closed when the claim is lost; the fill must stop.
	Lost() <-chan struct{}
	// Release ends the claim; the next miss claims afresh.
	Release(ctx context.Context) error
}

// WithCluster makes the engine one replica of c. local keeps the bytes a
// relay fill receives on this replica only (the owner writes the shared
// store); nil writes them to the store like any fill.
func WithCluster(c Cluster, local content.LocalIngester) Option {
	return func(e *Engine) { e.cluster, e.relaySpool = c, local }
}

// clusterMetrics are a replica's fills by role.
type clusterMetrics struct {
	fills *prometheus.CounterVec
}

func newClusterMetrics(reg prometheus.Registerer) (*clusterMetrics, error) {
	m := &clusterMetrics{fills: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_cluster_fills_total",
		Help: "Blob fills this replica ran, by role: owner (it held the fill record and fetched from the upstream; a takeover counts again) or relay (it fetched from the replica owning or filling the blob).",
	}, []string{"role"})}
	if err := reg.Register(m.fills); err != nil {
		return nil, err
	}
	return m, nil
}

// relayed reports whether ctx serves a request a peer relayed here.
func (e *Engine) relayed(ctx context.Context) bool {
	return e.cluster != nil && e.cluster.Relayed(ctx)
}

// peerFor returns the replica to ask for key instead of the upstream: its
// owner, unless that is this replica, none is live, or ctx serves a
// peer's request already.
func (e *Engine) peerFor(ctx context.Context, key string) string {
	if e.cluster == nil || e.cluster.Relayed(ctx) {
		return ""
	}
	if peer, self := e.cluster.Owner(key); peer != "" && !self {
		return peer
	}
	return ""
}

// peerGone reports whether err is a peer's failure to answer (it could
// not be reached, or its answer broke off), as opposed to its answer: the
// question may go elsewhere.
func peerGone(err error) bool {
	var ue *upstream.Error
	return errors.As(err, &ue) && ue.StatusCode == 0
}

// manifestKey is the ownership key of a manifest reference.
func manifestKey(repo, ref string) string {
	if _, err := digest.Parse(ref); err == nil {
		return repo + "@" + ref
	}
	return repo + ":" + ref
}

// errClaimLost fails a fill whose claim another replica took.
var errClaimLost = errors.New("fill claim lost: another replica fills the blob now")

func claimLost(c FillClaim) bool {
	if c == nil {
		return false
	}
	select {
	case <-c.Lost():
		return true
	default:
		return false
	}
}

// fromOwner asks the owner of ref for the manifest (a GET: the answer is
// shared by the requests of a flight, HEADs and GETs alike). ok is false
// when this replica fetches itself: it owns ref, or the owner is gone.
func (e *Engine) fromOwner(ctx context.Context, repo, ref string) (m upstream.Manifest, ok bool, err error) {
	peer := e.peerFor(ctx, manifestKey(repo, ref))
	if peer == "" {
		return upstream.Manifest{}, false, nil
	}
	m, err = e.cluster.Manifest(ctx, peer, repo, ref, false)
	switch {
	case err == nil:
		e.bodies.put(m.Digest, m.Body)
		e.peerLinked(repo, ref, m.Digest)
		return m, true, nil
	case peerGone(err):
		e.log.Info("manifest owner unreachable: fetching here", zap.String("owner", peer), zap.String("repo", repo), zap.String("ref", ref), zap.Error(err))
		return upstream.Manifest{}, false, nil
	}
	return upstream.Manifest{}, true, fmt.Errorf("from %s: %w", peer, err)
}

// revalidateWithOwner asks the owner of repo:tag about the stale record
// rec, for revalidate: nil when rec still holds, the manifest when the tag
// moved. ok is false when this replica revalidates itself: it owns the
// tag, or the owner is gone.
func (e *Engine) revalidateWithOwner(ctx context.Context, repo, tag string, rec meta.Tag) (v any, ok bool, err error) {
	peer := e.peerFor(ctx, repo+":"+tag)
	if peer == "" {
		return nil, false, nil
	}
	h, err := e.cluster.Manifest(ctx, peer, repo, tag, true)
	if err == nil && h.Digest == rec.Digest {
		e.peerLinked(repo, tag, "") // the owner's record is fresh now
		return nil, true, nil
	}
	if err == nil {
		var m upstream.Manifest
		if m, err = e.cluster.Manifest(ctx, peer, repo, tag, false); err == nil {
			e.bodies.put(m.Digest, m.Body)
			e.peerLinked(repo, tag, m.Digest)
			return m, true, nil
		}
	}
	if peerGone(err) {
		e.log.Info("tag owner unreachable: revalidating here", zap.String("owner", peer), zap.String("repo", repo), zap.String("tag", tag), zap.Error(err))
		return nil, false, nil
	}
	return nil, true, err
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/upstream"
	"go.uber.org/zap"
)

// source is where a replica's fill takes its bytes from next.
type source struct {
	peer  string // the replica owning or filling the blob
	store bool   // the shared store: the blob was committed meanwhile
	// Neither: the upstream, under this replica's claim (f.claim).
}

func (s source) String() string {
	switch {
	case s.peer != "":
		return "peer " + s.peer
	case s.store:
		return "the shared store"
	}
	return "the upstream"
}

// clusterFill is the state of fetchClustered: where the bytes go, how many
// arrived, and how often a source failed.
type clusterFill struct {
	e      *Engine
	f      *fill
	log    *zap.Logger
	cancel context.CancelFunc // ends the fill's context (its claim was lost)

	sp      spool
	kept    bool
	local   content.LocalIngest // sp's ingest while it is this replica's only
	size    int64
	written int64
	fails   int
	role    string // the role counted last
}

// fetchClustered is fetchBlob on a replica of a cluster. The bytes come
// from the replica owning the digest (a relay, into this replica's spool),
// or, once this replica holds the fill record, from the upstream into the
// shared store; when a source breaks mid-way the fill goes on from the
// offset reached, from wherever the blob is by then (see cluster.go). The
// bytes are verified here whatever their source, and the claim is checked
// (the fence) right before the blob is published.
func (e *Engine) fetchClustered(ctx context.Context, f *fill, log *zap.Logger, start time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cf := &clusterFill{e: e, f: f, log: log, cancel: cancel, size: -1}
	buf := make([]byte, fillBuffer)
	first := true
	for {
		src, err := cf.next(ctx)
		if err != nil {
			return err
		}
		body, err := cf.open(ctx, src)
		if err != nil {
			if !peerGone(err) || !cf.failed(src, err) {
				return err
			}
			continue
		}
		if first {
			e.m.fillTTFB.WithLabelValues(f.target.rule).Observe(e.now().Sub(start).Seconds())
			first = false
		}
		if err := cf.place(ctx, src, body); err != nil {
			body.Body.Close()
			return err
		}
		count := func(int) {}
		if src.peer == "" && !src.store {
			count = func(n int) { e.m.upBytes.WithLabelValues(f.target.rule).Add(float64(n)) }
		}
		cf.written, err = e.pump(ctx, f, cf.sp, cf.kept, newStallReader(body.Body, e.stallTimeout), cf.written, cf.size, buf, count)
		var brk *bodyBroken
		if err == nil {
			break
		}
		if claimLost(f.claim) {
			return unavailable(errClaimLost)
		}
		if !errors.As(err, &brk) || !cf.failed(src, brk.cause) {
			return err
		}
	}
	if f.claim != nil {
		if err := f.claim.Progress(ctx, cf.written); err != nil {
			return unavailable(fmt.Errorf("%w: %v", errClaimLost, err))
		}
	}
	return cf.sp.commit(ctx)
}

// unavailable is a cluster's failure as the clients see it: 503, to retry
// (another replica fills the blob now, or the store did not answer).
func unavailable(err error) error {
	return &cache.UpstreamError{Err: cache.ErrUnavailable, Cause: err}
}

// failed counts a source's failure and reports whether the fill may try
// again; it pauses a little more each time.
func (cf *clusterFill) failed(src source, cause error) bool {
	cf.fails++
	if cf.fails > cf.e.resumeAttempts {
		return false
	}
	cf.log.Info("blob fill source failed: going on from the offset reached", zap.Stringer("source", src),
		zap.Int64("offset", cf.written), zap.Int("attempt", cf.fails), zap.NamedError("cause", cause))
	time.Sleep(time.Duration(cf.fails) * 50 * time.Millisecond)
	return true
}

// next decides where the bytes come from now: this replica's claim means
// the upstream; else the owner of the digest (unless a peer relayed the
// request that started the fill); else the fill record decides, claimed
// by this replica (then the upstream, or the store if the blob was
// committed meanwhile) or held by the replica to relay from.
func (cf *clusterFill) next(ctx context.Context) (source, error) {
	e, f := cf.e, cf.f
	if f.claim != nil {
		if claimLost(f.claim) {
			return source{}, unavailable(errClaimLost)
		}
		return source{}, nil
	}
	for {
		if !f.relayed {
			if peer, self := e.cluster.Owner(f.d.String()); peer != "" && !self {
				cf.count("relay")
				return source{peer: peer}, nil
			}
		}
		claim, holder, err := e.cluster.ClaimFill(ctx, f.d)
		switch {
		case err != nil:
			return source{}, unavailable(fmt.Errorf("claim the fill of %s: %w", f.d, err))
		case claim != nil:
			if _, err := e.store.Stat(ctx, f.d); err == nil {
				// Committed by a holder that then died, or let go just now,
				// perhaps for another repository.
				cf.releaseClaim(ctx, claim)
				if err := cf.confirmOrigin(ctx); err != nil {
					return source{}, err
				}
				return source{store: true}, nil
			}
			f.claim = claim
			go func() {
				select {
				case <-claim.Lost():
					cf.cancel()
				case <-ctx.Done():
				}
			}()
			cf.count("owner")
			if claim.Takeover() {
				cf.log.Info("blob fill taken over", zap.Int64("offset", cf.written))
			}
			return source{}, nil
		case holder != "":
			cf.count("relay")
			return source{peer: holder}, nil
		}
		// This replica still holds a claim nobody renews: it expires.
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return source{}, ctx.Err()
		}
	}
}

// confirmOrigin makes sure the repository the fill was started for may
// share a blob found committed by the fill itself: it is linked to it, or
// the upstream says it has it (one HEAD). Nobody asked the store for this
// request before the fill started when it came to a non-owner (blob), and
// a blob held for another repository is served only with the upstream's
// confirmation.
func (cf *clusterFill) confirmOrigin(ctx context.Context) error {
	e, f := cf.e, cf.f
	if _, err := e.index.Blob(ctx, f.origin, f.d); err == nil {
		return nil
	}
	_, err := e.statUpstream(ctx, f.target, f.d)
	return err
}

// count counts the fill once per role it takes.
func (cf *clusterFill) count(role string) {
	if cf.role != role {
		cf.role = role
		cf.e.cm.fills.WithLabelValues(role).Inc()
	}
}

func (cf *clusterFill) releaseClaim(ctx context.Context, c FillClaim) {
	if err := c.Release(ctx); err != nil {
		cf.log.Warn("release the blob's fill record", zap.Error(err))
	}
}

// open starts reading src from the offset reached.
func (cf *clusterFill) open(ctx context.Context, src source) (upstream.BlobBody, error) {
	e, f := cf.e, cf.f
	switch {
	case src.peer != "":
		return e.cluster.Blob(ctx, src.peer, f.origin, f.d, cf.written, false)
	case src.store:
		rc, info, err := e.store.Open(ctx, f.d)
		if err != nil {
			return upstream.BlobBody{}, err
		}
		if _, err := rc.Seek(cf.written, io.SeekStart); err != nil {
			rc.Close()
			return upstream.BlobBody{}, err
		}
		return upstream.BlobBody{Body: rc, Offset: cf.written, Size: info.Size}, nil
	case cf.written == 0:
		e.m.upstream(f.target.rule, "blob", "GET")
		return e.up.Blob(ctx, f.target.repo, f.d, 0, -1)
	}
	return e.resume(ctx, f, cf.written, cf.size, cf.fails)
}

// place makes room for the first body's bytes: the store's ingest for the
// upstream's, this replica's spool for a peer's or the store's; and shares
// the spooled bytes into the store when the upstream follows a relay (a
// takeover from the bytes this replica has).
func (cf *clusterFill) place(ctx context.Context, src source, body upstream.BlobBody) error {
	e, f := cf.e, cf.f
	upstreamSrc := src.peer == "" && !src.store
	if cf.sp == nil {
		cf.size = body.Size
		var err error
		switch {
		case upstreamSrc || e.relaySpool == nil:
			cf.sp, cf.kept, err = e.spoolFor(ctx, f, body.Size, cf.log)
		default:
			if cf.local, err = e.relaySpool.IngestLocal(ctx, f.d, body.Size); err == nil {
				cf.sp, cf.kept = ingestSpool{cf.local}, true
			}
		}
		if err != nil {
			return err
		}
		f.started(cf.sp, cf.kept, body.Size)
		return nil
	}
	if body.Size >= 0 && cf.size >= 0 && body.Size != cf.size {
		return fmt.Errorf("%w: %s says the blob has %d bytes, not %d", errBadUpstream, src, body.Size, cf.size)
	}
	if upstreamSrc && cf.local != nil {
		if err := cf.local.Share(ctx); err != nil {
			return fmt.Errorf("take over the fill from %d bytes: %w", cf.written, err)
		}
		cf.local = nil
	}
	return nil
}

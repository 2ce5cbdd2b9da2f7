package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/internal/sleep"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrContended means ClaimFill gave up after the record kept changing
// under it; the caller may try again.
var ErrContended = errors.New("cluster: fill record contended")

// Liveness says whether a replica is live; *Membership is one.
type Liveness interface {
	IsLive(peer string) bool
}

// FillRecord is the content of a fill record.
type FillRecord struct {
	// Holder is the filling replica's address; "" while a new record
	// waits for its first holder.
	Holder string `json:"holder"`
	// Instance tells one run of the holder from its next (a restart).
	Instance string `json:"instance,omitempty"`
	// Started is when the holder claimed the fill.
	Started time.Time `json:"started,omitzero"`
	// Verified is how many leading bytes the holder has verified and
	// stored, as it last said with Progress.
	Verified int64 `json:"verified,omitempty"`
}

// Claim tuning: attempts before ErrContended, and how many of them a
// record whose lease is taken but whose holder is not named yet is given
// to settle before it is treated as abandoned.
const (
	claimAttempts  = 12
	settleAttempts = 6
)

// Fills claims fill records in the shared container. It is safe for
// concurrent use.
type Fills struct {
	c        *azure.Container
	self     string
	instance string
	live     Liveness
	dur      time.Duration
	log      *zap.Logger

	acquired, lost, takeovers prometheus.Counter
}

// NewFills returns the fill records of replica self in c, with leases of
// dur (15 s to 60 s), judging holders by live.
func NewFills(c *azure.Container, self string, live Liveness, dur time.Duration, log *zap.Logger, reg prometheus.Registerer) (*Fills, error) {
	if err := validLease(dur); err != nil {
		return nil, fmt.Errorf("cluster: fill lease %w", err)
	}
	f := &Fills{
		c: c, self: self, instance: rand.Text()[:16], live: live, dur: dur, log: log,
		acquired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cluster_lease_acquired_total",
			Help: "Fill records this replica claimed (new fills and takeovers).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cluster_lease_lost_total",
			Help: "Fill claims this replica lost before releasing them (renewal failed or another replica took over).",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_cluster_takeovers_total",
			Help: "Fill records this replica took over from a holder that stopped renewing or died.",
		}),
	}
	for _, col := range []prometheus.Collector{f.acquired, f.lost, f.takeovers} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("cluster: metrics: %w", err)
		}
	}
	return f, nil
}

// FillName is the record of blob d: fills/<alg>/<hex>.
func FillName(d digest.Digest) string {
	return "fills/" + d.Algorithm().String() + "/" + d.Encoded()
}

// ClaimFill decides who fills blob d. It returns
//   - a *Claim when this replica is now the holder: it fills, calls
//     Progress as bytes are verified and Release when done or abandoned.
//     Claim.Takeover reports a previous holder's record it took over
//     (lease expired, holder dead per membership, or an earlier run of
//     this replica). The blob may have been committed meanwhile: check the
//     store again before filling;
//   - else the address of the live replica holding the claim: relay from
//     it (Self when this process already holds it: join the local fill).
//
// Errors wrap ErrContended, or the store's errors.
func (f *Fills) ClaimFill(ctx context.Context, d digest.Digest) (*Claim, string, error) {
	if err := d.Validate(); err != nil {
		return nil, "", fmt.Errorf("cluster: claim fill %q: %w", d, err)
	}
	name := FillName(d)
	broke, wait, create := false, false, true
	for attempt := 0; attempt < claimAttempts; attempt++ {
		if wait {
			if err := sleep.For(ctx, backoff(attempt)); err != nil {
				return nil, "", err
			}
		}
		wait = true
		if create {
			// Most claims are of a blob nobody fills: create the record
			// (without a holder; whoever takes its lease fills) and take
			// its lease at the ETag the write returned, reading nothing.
			create = false
			c, err := f.create(ctx, d, name)
			switch {
			case err == nil:
				return c, "", nil
			case !errors.Is(err, errRace):
				return nil, "", fmt.Errorf("cluster: claim fill %s: %w", d, err)
			}
			wait = false // there, or taken: read it
			continue
		}
		rec, state, etag, err := f.read(ctx, name)
		if errors.Is(err, azure.ErrNotFound) {
			create, wait = true, false // released meanwhile
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("cluster: claim fill %s: %w", d, err)
		}
		switch state {
		case lease.StateTypeAvailable, lease.StateTypeExpired, lease.StateTypeBroken, "":
			c, err := f.acquire(ctx, d, name, etag, rec)
			if err == nil || !errors.Is(err, errRace) {
				return c, "", err
			}
			continue
		}
		// Leased (or breaking): by whom?
		switch holder, alive := f.holder(rec); {
		case alive:
			return nil, holder, nil
		case rec != nil && rec.Holder == "" && attempt < settleAttempts:
			continue // taken a moment ago; the holder names itself next
		case broke:
			continue // broken once already: let whoever took it settle
		}
		broke = true
		err = f.breakLease(ctx, name, etag)
		if err != nil && !errors.Is(err, errRace) {
			return nil, "", fmt.Errorf("cluster: claim fill %s: %w", d, err)
		}
		if err == nil {
			f.log.Info("fill record broken: holder gone", zap.String("digest", d.String()), zap.Any("record", rec))
			wait = false
		}
	}
	return nil, "", fmt.Errorf("cluster: claim fill %s: %w", d, ErrContended)
}

// holder names the replica holding a leased record and whether it
// counts as alive: a live peer, or this very process. An earlier run of
// this replica, a dead peer, an unnamed holder and an unreadable record
// are not alive.
func (f *Fills) holder(rec *FillRecord) (string, bool) {
	switch {
	case rec == nil || rec.Holder == "":
		return "", false
	case rec.Holder == f.self:
		return f.self, rec.Instance == f.instance
	}
	return rec.Holder, f.live.IsLive(rec.Holder)
}

// errRace marks a step another replica's step made fail; ClaimFill reads
// the record again.
var errRace = errors.New("cluster: raced")

// race wraps err with errRace when the store's answer means someone else
// changed the record first.
func race(err error) error {
	if errors.Is(err, azure.ErrLeaseConflict) || errors.Is(err, azure.ErrConditionNotMet) || errors.Is(err, azure.ErrNotFound) {
		return fmt.Errorf("%w: %w", errRace, err)
	}
	return err
}

// read returns the record (nil if it is not JSON), its lease state and
// its ETag.
func (f *Fills) read(ctx context.Context, name string) (*FillRecord, lease.StateType, azcore.ETag, error) {
	r, err := f.c.Client().NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", "", azure.Classify("get fill record", name, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, "", "", azure.Classify("get fill record", name, err)
	}
	var rec FillRecord
	if json.Unmarshal(b, &rec) != nil {
		f.log.Warn("fill record is not JSON; treating it as abandoned", zap.String("name", name))
		return nil, azure.Value(r.LeaseState), azure.Value(r.ETag), nil
	}
	return &rec, azure.Value(r.LeaseState), azure.Value(r.ETag), nil
}

// create writes a new record without a holder and claims it: two
// requests for a blob nobody fills before the claim is returned, the
// third (naming the holder) while the caller goes on. Errors wrap errRace
// when the record is there already (held, or left by a fill that failed)
// or another replica took the new one first.
func (f *Fills) create(ctx context.Context, d digest.Digest, name string) (*Claim, error) {
	etag, err := f.c.Put(ctx, name, mustJSON(FillRecord{}), azure.Cond{IfNoneMatch: azcore.ETagAny})
	if err != nil {
		// A leased record refuses the write for want of its lease ID
		// rather than say it exists.
		if errors.Is(err, azure.ErrExists) || errors.Is(err, azure.ErrLeaseConflict) || errors.Is(err, azure.ErrConditionNotMet) {
			return nil, fmt.Errorf("%w: %w", errRace, err)
		}
		return nil, err
	}
	return f.acquire(ctx, d, name, etag, &FillRecord{})
}

// acquire takes the record's lease if it is still at etag and returns the
// claim, which names this replica the holder under the lease in the
// background (the caller checks the store meanwhile) and renews it.
func (f *Fills) acquire(ctx context.Context, d digest.Digest, name string, etag azcore.ETag, prev *FillRecord) (*Claim, error) {
	lc, err := lease.NewBlobClient(f.c.Client().NewBlobClient(name), nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: lease %s: %w", name, err)
	}
	_, err = lc.AcquireLease(ctx, int32(f.dur/time.Second), &lease.BlobAcquireOptions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
	})
	if err != nil {
		return nil, race(azure.Classify("acquire lease", name, err))
	}
	l, err := f.c.Lease(name, *lc.LeaseID(), f.dur)
	if err != nil {
		return nil, err
	}
	rec := FillRecord{Holder: f.self, Instance: f.instance, Started: time.Now().UTC()}
	c := newClaim(ctx, f, d, l, rec) // names this replica the holder meanwhile
	f.acquired.Inc()
	if prev == nil || prev.Holder != "" {
		c.prev = prev
		if prev == nil {
			c.prev = &FillRecord{}
		}
		f.takeovers.Inc()
		f.log.Info("fill taken over", zap.String("digest", d.String()), zap.Any("previous", c.prev))
	}
	return c, nil
}

// breakLease ends the record's lease at once if it is still at etag.
func (f *Fills) breakLease(ctx context.Context, name string, etag azcore.ETag) error {
	lc, err := lease.NewBlobClient(f.c.Client().NewBlobClient(name), nil)
	if err != nil {
		return fmt.Errorf("cluster: lease %s: %w", name, err)
	}
	var now int32
	_, err = lc.BreakLease(ctx, &lease.BlobBreakOptions{
		BreakPeriod:              &now,
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
	})
	return race(azure.Classify("break lease", name, err))
}

func mustJSON(r FillRecord) []byte {
	b, _ := json.Marshal(r) // strings, a time and an int always marshal
	return b
}

// backoff is the pause before attempt n of a contended claim.
func backoff(n int) time.Duration {
	return min(10*time.Millisecond<<min(n, 6), 500*time.Millisecond)
}

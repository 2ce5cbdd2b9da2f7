package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// azEnv is one Azurite shared by the subtests of TestAzurite; each subtest
// has its own container, which each replica opens with its own client.
type azEnv struct{ srv *azuritetest.Server }

func (e *azEnv) container() string { return azuritetest.ContainerName("t") }

// open is one replica's client of container name.
func (e *azEnv) open(t *testing.T, name string) *azure.Container {
	t.Helper()
	return azuretest.Open(t, e.srv, name)
}

// liveSet is a settable Liveness.
type liveSet struct {
	mu   sync.Mutex
	dead map[string]bool
}

func (l *liveSet) IsLive(p string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.dead[p]
}

func (l *liveSet) kill(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead == nil {
		l.dead = map[string]bool{}
	}
	l.dead[p] = true
}

// replica is one replica's fill records.
type replica struct {
	*Fills
	reg *prometheus.Registry
}

func (e *azEnv) replicas(t *testing.T, live Liveness, selves ...string) []replica {
	t.Helper()
	name := e.container()
	out := make([]replica, len(selves))
	for i, s := range selves {
		reg := prometheus.NewRegistry()
		f, err := NewFills(e.open(t, name), s, live, azure.MinLease, zaptest.NewLogger(t).Named(s), reg)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = replica{f, reg}
	}
	return out
}

// claim claims d's fill, failing the test (saying which claim it was)
// unless this replica gets it.
func (r replica) claim(t *testing.T, d digest.Digest, what string) *Claim {
	t.Helper()
	cl, h, err := r.ClaimFill(context.Background(), d)
	if err != nil || cl == nil {
		t.Fatalf("%s: %v %q %v", what, cl, h, err)
	}
	return cl
}

func dgst(s string) digest.Digest { return digest.FromString(s) }

func TestAzurite(t *testing.T) {
	t.Parallel()
	e := &azEnv{srv: azuritetest.Start(t)}
	t.Run("PeerKeyOneWinner", func(t *testing.T) { t.Parallel(); testPeerKeyOneWinner(t, e) })
	t.Run("ClaimOneWinner", func(t *testing.T) { t.Parallel(); testClaimOneWinner(t, e) })
	t.Run("ClaimHolderDead", func(t *testing.T) { t.Parallel(); testClaimHolderDead(t, e) })
	t.Run("ClaimRestartedHolder", func(t *testing.T) { t.Parallel(); testClaimRestartedHolder(t, e) })
	t.Run("ThreeNodes", func(t *testing.T) { t.Parallel(); testThreeNodes(t, e) })
	t.Run("DisagreeingViews", func(t *testing.T) { t.Parallel(); testDisagreeingViews(t, e) })
	t.Run("ClaimUnnamedHolder", func(t *testing.T) { t.Parallel(); testClaimUnnamedHolder(t, e) })
	t.Run("ClaimRequests", func(t *testing.T) { t.Parallel(); testClaimRequests(t, e) })
	t.Run("ClaimNotNamed", func(t *testing.T) { t.Parallel(); testClaimNotNamed(t, e) })
	// The two that wait out a lease run beside each other.
	t.Run("ClaimStalledHolder", func(t *testing.T) { t.Parallel(); testClaimStalledHolder(t, e) })
	t.Run("ClaimRenewedThenLost", func(t *testing.T) { t.Parallel(); testClaimRenewedThenLost(t, e) })
}

// azKeys is the key store serve gives a node: the metadata index's
// secrets, on the container c.
func azKeys(t *testing.T, c *azure.Container) KeyStore {
	t.Helper()
	idx, err := azmeta.New(context.Background(), c, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return KeyStoreFunc(func(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
		return idx.Secret(ctx, azmeta.SecretName(name), create)
	})
}

func testPeerKeyOneWinner(t *testing.T, e *azEnv) {
	ctx := context.Background()
	name := e.container()
	const replicas, each = 3, 4
	var wg sync.WaitGroup
	creds := make(chan *Credential, replicas*each)
	for range replicas {
		ks := azKeys(t, e.open(t, name))
		for range each {
			wg.Go(func() {
				c, err := LoadPeerKey(ctx, ks)
				if err != nil {
					t.Error(err)
					return
				}
				creds <- c
			})
		}
	}
	wg.Wait()
	close(creds)
	var first *Credential
	for c := range creds {
		if first == nil {
			first = c
		} else if !bytes.Equal(*c.key.Load(), *first.key.Load()) {
			t.Fatal("replicas hold different peer keys")
		}
	}
	if first == nil {
		t.Fatal("no replica loaded a key")
	}
	stored, _, err := e.open(t, name).Get(ctx, PeerKeyName)
	if err != nil || !bytes.Equal(stored, *first.key.Load()) {
		t.Fatalf("stored key differs: %v", err)
	}

	// A stored key of the wrong size is an error, never replaced.
	bad := e.open(t, e.container())
	if _, err := bad.Put(ctx, PeerKeyName, []byte("short"), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPeerKey(ctx, azKeys(t, bad)); err == nil {
		t.Fatal("a 5-byte stored key was accepted")
	}
	if b, _, _ := bad.Get(ctx, PeerKeyName); string(b) != "short" {
		t.Fatalf("the bad key was replaced by %q", b)
	}
}

// Replicas claiming the same digest at once: exactly one fills, the others
// are told to relay from it.
func testClaimOneWinner(t *testing.T, e *azEnv) {
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, a, b, c)
	for i := range 4 {
		d := dgst(fmt.Sprint("blob", i))
		type result struct {
			self, holder string
			claim        *Claim
			err          error
		}
		results := make(chan result, len(rs))
		var wg sync.WaitGroup
		for _, r := range rs {
			wg.Go(func() {
				cl, h, err := r.ClaimFill(ctx, d)
				results <- result{r.self, h, cl, err}
			})
		}
		wg.Wait()
		close(results)
		var winner *Claim
		var winnerSelf string
		var holders []string
		for res := range results {
			switch {
			case res.err != nil:
				t.Fatalf("%s: %v", res.self, res.err)
			case res.claim != nil:
				if winner != nil {
					t.Fatalf("%s: two replicas won %s", d, res.self)
				}
				winner, winnerSelf = res.claim, res.self
			default:
				holders = append(holders, res.holder)
			}
		}
		if winner == nil {
			t.Fatalf("%s: nobody won", d)
		}
		if _, took := winner.Takeover(); took {
			t.Fatal("a new fill reported as a takeover")
		}
		for _, h := range holders {
			if h != winnerSelf {
				t.Fatalf("a loser was told to relay from %s, the winner is %s", h, winnerSelf)
			}
		}
		// The holder asking again is told it fills already.
		for _, r := range rs {
			if r.self == winnerSelf {
				if cl, h, err := r.ClaimFill(ctx, d); cl != nil || h != winnerSelf || err != nil {
					t.Fatalf("the holder claiming again: %v %q %v", cl, h, err)
				}
			}
		}
		if err := winner.Progress(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if err := winner.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := winner.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		if err := winner.Progress(ctx, 11); !errors.Is(err, ErrReleased) {
			t.Fatalf("Progress after Release: %v", err)
		}
		// Released: the record is gone and the next miss claims afresh.
		if _, _, err := rs[0].c.Get(ctx, FillName(d)); !errors.Is(err, azure.ErrNotFound) {
			t.Fatalf("record after release: %v", err)
		}
		cl := rs[1].claim(t, d, "claim after release")
		if _, took := cl.Takeover(); took {
			t.Fatal("a claim after release reported as a takeover")
		}
		if err := cl.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	acquired := 0.0
	for _, r := range rs {
		acquired += promtest.Sum(t, r.reg, "airlock_cluster_lease_acquired_total")
	}
	if acquired != 8 {
		t.Fatalf("lease acquisitions %v, want 8", acquired)
	}
	if _, _, err := rs[0].ClaimFill(ctx, "sha256:nothex"); err == nil {
		t.Fatal("an invalid digest was claimed")
	}
}

// What a claim costs in requests to the store: a blob nobody fills two
// before the claim is returned (the record created, its lease), one more
// while the claimer goes on (the holder named), its release one; a blob
// another replica fills two (the create refused, the record read).
func testClaimRequests(t *testing.T, e *azEnv) {
	ctx := context.Background()
	name := e.container()
	var rec azuretest.Recorder
	fills := func(self string, opts ...azure.Option) *Fills {
		f, err := NewFills(azuretest.Open(t, e.srv, name, opts...), self, &liveSet{}, azure.MinLease, zaptest.NewLogger(t), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f, other := fills(a, azure.WithTransport(&rec)), replica{Fills: fills(b)}
	d := dgst("requests")
	rn := FillName(d)
	check := func(what string, want ...string) {
		t.Helper()
		if got := rec.Take(); !slices.Equal(got, want) {
			t.Fatalf("%s sent %q, want %q", what, got, want)
		}
	}
	rec.Take() // opening the container
	cl, h, err := f.ClaimFill(ctx, d)
	if err != nil || cl == nil {
		t.Fatalf("claim: %v %q %v", cl, h, err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	check("a new claim and its release", "PUT "+rn, "PUT "+rn+"?comp=lease", "PUT "+rn, "DELETE "+rn)
	held := other.claim(t, d, "the other replica's claim")
	defer held.Release(ctx)
	if cl, h, err := f.ClaimFill(ctx, d); err != nil || cl != nil || h != b {
		t.Fatalf("claim of a held blob: %v %q %v, want to relay from %s; sent %q", cl != nil, h, err, b, rec.Take())
	}
	check("a claim of a held blob", "PUT "+rn, "GET "+rn)
}

// refuseLeasedWrites answers 503 to every write under a lease that is not
// a lease operation (the holder's record writes), without sending it.
type refuseLeasedWrites struct{}

func (refuseLeasedWrites) Do(r *http.Request) (*http.Response, error) {
	leased := false
	for k := range r.Header { // the SDK sets its headers in lower case, not canonical
		leased = leased || strings.EqualFold(k, "x-ms-lease-id")
	}
	if r.Method == http.MethodPut && leased && r.URL.Query().Get("comp") == "" {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 refused by the test", Header: http.Header{},
			Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}
	return http.DefaultClient.Do(r)
}

// A claim whose record cannot name its holder is lost (the fill stops:
// nobody could tell who fills) and Release lets its lease go at once, so
// another replica claims the blob without breaking it.
func testClaimNotNamed(t *testing.T, e *azEnv) {
	ctx := context.Background()
	name := e.container()
	f, err := NewFills(azuretest.Open(t, e.srv, name, azure.WithTransport(refuseLeasedWrites{}), azure.WithRetry(policy.RetryOptions{MaxRetries: -1})),
		a, &liveSet{}, azure.MaxLease, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d := dgst("not named")
	cl, h, err := f.ClaimFill(ctx, d)
	if err != nil || cl == nil {
		t.Fatalf("claim: %v %q %v", cl, h, err)
	}
	select {
	case <-cl.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("the claim was not lost when its holder could not be named")
	}
	if err := cl.Release(ctx); err == nil {
		t.Fatal("Release of a lost claim reported nothing")
	}
	other, err := NewFills(azuretest.Open(t, e.srv, name), b, &liveSet{}, azure.MinLease, zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	props, err := other.c.Client().NewBlobClient(FillName(d)).GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := azure.Value(props.LeaseState); st != lease.StateTypeAvailable {
		t.Fatalf("the lost claim's record is %s after Release, want its lease let go", st)
	}
	next := replica{Fills: other}.claim(t, d, "the claim after the lost one")
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A holder that membership says is dead is taken over at once; its
// writes with its old lease fail (fencing).
func testClaimHolderDead(t *testing.T, e *azEnv) {
	ctx := context.Background()
	live := &liveSet{}
	rs := e.replicas(t, live, a, b)
	d := dgst("dead holder")
	old := rs[0].claim(t, d, "first claim")
	if err := old.Progress(ctx, 1234); err != nil {
		t.Fatal(err)
	}
	if _, h, err := rs[1].ClaimFill(ctx, d); h != a || err != nil {
		t.Fatalf("claim while a holds it: %q %v", h, err)
	}
	// A break conditioned on an ETag the record no longer has does nothing.
	if err := rs[1].breakLease(ctx, FillName(d), `"0x8DEADBEEF"`); !errors.Is(err, errRace) {
		t.Fatalf("break with a stale ETag: %v", err)
	}
	if err := old.Progress(ctx, 1234); err != nil {
		t.Fatalf("the holder after a refused break: %v", err)
	}
	live.kill(a)
	start := time.Now()
	cl := rs[1].claim(t, d, "claim from a dead holder")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the takeover took %s; a dead holder's lease is broken at once", took)
	}
	prev, took := cl.Takeover()
	if !took || prev.Holder != a || prev.Verified != 1234 {
		t.Fatalf("takeover of %+v %v", prev, took)
	}
	// The ex-holder is fenced off: its write fails and marks the claim lost.
	if err := old.Progress(ctx, 2000); !errors.Is(err, azure.ErrLeaseConflict) {
		t.Fatalf("the ex-holder's write: %v", err)
	}
	select {
	case <-old.Lost():
	default:
		t.Fatal("a refused write did not mark the claim lost")
	}
	if err := old.Release(ctx); !errors.Is(err, azure.ErrLeaseConflict) {
		t.Fatalf("the ex-holder's release: %v", err)
	}
	if err := cl.Progress(ctx, 10); err != nil {
		t.Fatalf("the new holder's write: %v", err)
	}
	if got := promtest.Sum(t, rs[1].reg, "airlock_cluster_takeovers_total"); got != 1 {
		t.Fatalf("takeovers %v", got)
	}
	if got := promtest.Sum(t, rs[0].reg, "airlock_cluster_lease_lost_total"); got != 1 {
		t.Fatalf("losses %v", got)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A replica that restarted (same address, new instance) takes over the
// fills its earlier run held instead of relaying from itself.
func testClaimRestartedHolder(t *testing.T, e *azEnv) {
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, a, a)
	d := dgst("restart")
	old := rs[0].claim(t, d, "first claim")
	cl := rs[1].claim(t, d, "the restarted replica")
	if prev, took := cl.Takeover(); !took || prev.Holder != a {
		t.Fatalf("takeover of %+v %v", prev, took)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Release(ctx); !errors.Is(err, azure.ErrNotFound) {
		t.Fatalf("the earlier run's release after the new run's: %v", err)
	}
}

// A record whose lease was taken by a claimer that died before naming
// itself, or that holds no JSON, is taken over once it had time to settle.
func testClaimUnnamedHolder(t *testing.T, e *azEnv) {
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, a)
	for _, body := range []string{`{"holder":""}`, "garbage"} {
		d := dgst(body)
		if _, err := rs[0].c.Put(ctx, FillName(d), []byte(body), azure.Cond{}); err != nil {
			t.Fatal(err)
		}
		if _, err := rs[0].c.AcquireLease(ctx, FillName(d), azure.MaxLease); err != nil {
			t.Fatal(err)
		}
		cl := rs[0].claim(t, d, body)
		if err := cl.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A live holder that stopped renewing keeps its claim until the lease
// expires; then another replica takes it over, and the stalled ex-holder's
// writes with its old lease fail.
func testClaimStalledHolder(t *testing.T, e *azEnv) {
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, a, b)
	d := dgst("stalled")
	old := rs[0].claim(t, d, "first claim")
	if err := old.Progress(ctx, 77); err != nil {
		t.Fatal(err)
	}
	old.stop() // the holder stalls: no renewal, no release
	<-old.kept
	if _, h, err := rs[1].ClaimFill(ctx, d); h != a || err != nil {
		t.Fatalf("claim of a live holder's fill: %q %v", h, err)
	}
	time.Sleep(azure.MinLease + time.Second)
	cl := rs[1].claim(t, d, "claim after the lease expired")
	if prev, took := cl.Takeover(); !took || prev.Holder != a || prev.Verified != 77 {
		t.Fatalf("takeover of %+v %v", prev, took)
	}
	if err := old.Progress(ctx, 100); !errors.Is(err, azure.ErrLeaseConflict) {
		t.Fatalf("the stalled ex-holder's write: %v", err)
	}
	if err := cl.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A holder that renews keeps its claim past the lease; when the lease is
// broken behind its back, Lost is closed within a renewal interval.
func testClaimRenewedThenLost(t *testing.T, e *azEnv) {
	ctx := context.Background()
	rs := e.replicas(t, &liveSet{}, a, b)
	d := dgst("renewed")
	cl := rs[0].claim(t, d, "claim")
	time.Sleep(azure.MinLease + time.Second)
	if _, h, err := rs[1].ClaimFill(ctx, d); h != a || err != nil {
		t.Fatalf("claim while the holder renews: %q %v", h, err)
	}
	if err := cl.Progress(ctx, 5); err != nil {
		t.Fatalf("the renewing holder's write: %v", err)
	}
	if _, err := rs[1].c.BreakLease(ctx, FillName(d), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.Lost():
	case <-time.After(azure.MinLease):
		t.Fatal("the broken claim was not reported lost")
	}
	if !errors.Is(cl.Err(), azure.ErrLeaseLost) {
		t.Fatalf("Err = %v", cl.Err())
	}
	if err := cl.Release(ctx); !errors.Is(err, azure.ErrLeaseLost) {
		t.Fatalf("Release of a lost claim: %v", err)
	}
	if got := promtest.Sum(t, rs[0].reg, "airlock_cluster_lease_lost_total"); got != 1 {
		t.Fatalf("losses %v", got)
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/cmd/airlock/internal/servertest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/polltest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// Losing a replica mid-fill. The owner of a blob is a separate airlock
// serve process on the shared store; it is killed with SIGKILL while the
// upstream body is held mid-way and the two other replicas' clients
// follow its fill through their relays. A survivor takes the fill over
// from the bytes it has (within one lease period and 2 s), every client
// of a survivor completes with verified bytes (one retry allowed after a
// broken transfer), no partial blob ever becomes visible, and the
// upstream sends at most twice the blob.
func TestReplicasOwnerKilled(t *testing.T) {
	t.Parallel()
	az := azuritetest.Shared(t)
	up := upstreamtest.New(t)
	ctr := azuritetest.ContainerName("k")
	const lease = 15 * time.Second
	lns := make([]net.Listener, 3)
	peers := make([]string, 3)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], peers[i] = ln, ln.Addr().String()
	}
	dir := t.TempDir()
	cfgFile := configtest.Write(t, configtest.Replica{
		Self: peers[0], Peers: peers, Dir: filepath.Join(dir, "spool"), LeaseDuration: lease, LogLevel: "info",
		Azure:    azuretest.Config(az, ctr),
		Upstream: up.URL(), Extra: "rules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: aks-managed-repository/*}\n",
	}.YAML())

	// The blob: one whose owner is the process, replica 0.
	const size = 6 << 20
	var repo string
	var d digest.Digest
	for i := 0; ; i++ {
		img := up.PushImage(t, fmt.Sprintf("team/k%d:v1", i), size, 1)
		ls, _ := img.Layers()
		ld, _ := ls[0].Digest()
		if cluster.Owner(ld.String(), peers) == peers[0] {
			repo, d = fmt.Sprintf("aks-managed-repository/team/k%d", i), digest.Digest(ld.String())
			break
		}
	}
	resume := make(chan struct{})
	defer close(resume)
	up.AddFault(upstreamtest.Fault{Method: http.MethodGet, PathContains: "/blobs/" + d.String(), Times: 1, PauseAfter: 2 << 20, Resume: resume})

	lns[0].Close() // the process binds it
	owner := startProcReady(t, cfgFile, peers[0])
	survivors := make([]*server.Server, 2)
	for i := 1; i < 3; i++ {
		azCfg := azuretest.Config(az, ctr)
		survivors[i-1] = runInProcess(t, &config.Config{
			Listen:    peers[i],
			Storage:   config.Storage{Dir: t.TempDir(), Driver: config.DriverAzure, Azure: &azCfg},
			Cluster:   cluster.Config{Self: peers[i], Peers: peers, LeaseDuration: 0},
			Upstreams: []config.Upstream{{Host: "mcr.microsoft.com", Endpoint: up.URL()}},
			Rules:     []rules.Rule{{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}},
			Log:       config.Log{Level: "warn", Format: "json"},
		}, lns[i], az.HTTPClient)
	}
	polltest.Until(t, 30*time.Second, "the survivors see all three replicas", func() bool {
		return promtest.Sum(t, survivors[0].Metrics(), "airlock_cluster_peers", "state", "live") == 3 &&
			promtest.Sum(t, survivors[1].Metrics(), "airlock_cluster_peers", "state", "live") == 3
	})

	// Clients of the survivors follow the owner's fill through their relays.
	type result struct {
		retried bool
		err     error
	}
	const clients = 6
	started := make(chan struct{}, clients)
	results := make(chan result, clients)
	for c := range clients {
		base := "http://" + peers[1+c%2]
		go func() {
			err := fetchFollowing(base, repo, d, started)
			if err == nil {
				results <- result{}
				return
			}
			var corrupt *errCorrupt
			if errors.As(err, &corrupt) {
				results <- result{err: err}
				return
			}
			// A broken transfer: one retry, to any replica.
			results <- result{retried: true, err: fetchFollowing("http://"+peers[1+(c+1)%2], repo, d, nil)}
		}()
	}
	for range clients {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatalf("the survivors' clients got no bytes of the owner's fill\n%s", owner.Stderr)
		}
	}
	killed := time.Now()
	owner.Kill()

	var retried int
	for range clients {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("a survivor's client: %v", r.err)
			}
			if r.retried {
				retried++
			}
		case <-time.After(lease + 30*time.Second):
			t.Fatal("a survivor's client still waits")
		}
	}
	took := time.Since(killed)
	t.Logf("every survivor's client had the blob %s after the kill (%d retried once)", took.Round(time.Millisecond), retried)
	if took > lease+2*time.Second {
		t.Errorf("recovery took %s, want at most the lease (%s) and 2 s", took, lease)
	}
	var takeovers float64
	for _, s := range survivors {
		takeovers += promtest.Sum(t, s.Metrics(), "airlock_cluster_takeovers_total")
	}
	if takeovers != 1 {
		t.Errorf("%v takeovers, want 1", takeovers)
	}
	sent := up.BytesSent("GET", "/blobs/"+d.String())
	t.Logf("the upstream sent %d bytes of a %d-byte blob", sent, size)
	if sent > 2*(size+4<<10) { // a layer is a tarball a little larger than size
		t.Errorf("the upstream sent %d bytes, more than twice the blob", sent)
	}
	// What the store holds is the whole verified blob, whoever serves it.
	for _, p := range peers[1:] {
		if err := fetchFollowing("http://"+p, repo, d, nil); err != nil {
			t.Errorf("after the takeover, through %s: %v", p, err)
		}
	}
}

// fetchFollowing GETs a blob, says on started (if not nil) once its first
// byte arrived, and checks every byte: a broken transfer is an error, a
// complete body that does not verify an *errCorrupt.
func fetchFollowing(base, repo string, d digest.Digest, started chan<- struct{}) error {
	resp, err := http.Get(base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", base, resp.StatusCode, b)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		return err
	}
	if started != nil {
		started <- struct{}{}
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: broken after %d bytes: %w", base, len(rest)+1, err)
	}
	if got := digest.FromBytes(append(first, rest...)); got != d || int64(len(rest)+1) != resp.ContentLength {
		return &errCorrupt{fmt.Sprintf("%s: a complete body of %d bytes with digest %s", base, len(rest)+1, got)}
	}
	return nil
}

// runInProcess serves cfg on ln in this process until the test ends,
// reaching Azure through client, and waits until it is ready.
func runInProcess(t *testing.T, cfg *config.Config, ln net.Listener, client *http.Client) *server.Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, zap.NewNop(), server.WithListener(ln), server.WithAzureOptions(azure.WithTransport(client)))
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Serve(t, "replica "+cfg.Listen, srv)
}

package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// sharedReplica is one replica's wiring of the shared pieces on a
// container: its own clients, index, content store, collector, session
// store and registry.
type sharedReplica struct {
	ctr *azure.Container
	col *evict.Collector
	srv *httptest.Server
}

func openShared(t *testing.T, srv *azuritetest.Server, name string, cfg *config.Config) *sharedReplica {
	t.Helper()
	ctx := context.Background()
	log := zap.NewNop()
	ctr := azuretest.Open(t, srv, name)
	idx, err := azmeta.New(ctx, ctr, log, nil, azmeta.WithSettle(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	store, err := azstore.New(ctr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	col, err := evict.New(store, idx, log, prometheus.NewRegistry(), cfg.EvictPolicy(),
		append([]evict.Option{evict.WithGrace(0), evict.WithFlushInterval(50 * time.Millisecond)}, sharedEvictOptions(ctr)...)...)
	if err != nil {
		t.Fatal(err)
	}
	_, upOpt, err := sharedUploads(cfg, ctr, idx, col.Store(), log)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(col.Store(), idx, upstreamtest.NewFake(), log, prometheus.NewRegistry(), upOpt)
	if err != nil {
		t.Fatal(err)
	}
	_, ropts, err := security(cfg, log, sharedAuthOption(idx))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(eng, log, prometheus.NewRegistry(), ropts...)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(reg)
	t.Cleanup(hs.Close)
	return &sharedReplica{ctr: ctr, col: col, srv: hs}
}

// Two replicas wired with the shared pieces on one container: a token
// issued by r1 is accepted by r2 (one signing key, created once in the
// store); an upload started on r1 is committed on r2 within the push
// section's caps; r2's collector keeps a blob r1 is filling.
func TestSharedWiring(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Auth: &config.Auth{Users: []config.AuthUser{{Name: "alice", PasswordHash: string(h)}}, Service: "airlock.test"},
		Push: config.Push{MaxUploads: 1, UploadTimeout: units.Duration(time.Hour)},
	}
	name := "shared-wiring"
	r1, r2 := openShared(t, srv, name, cfg), openShared(t, srv, name, cfg)
	client := &http.Client{Timeout: 30 * time.Second}

	// A token from r1's token endpoint.
	token := passwordToken(t, client, r1.srv.URL, "alice", "pw", "repository:team/app:pull,push")
	do := func(r *sharedReplica, method, path string, body io.Reader) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, r.srv.URL+path, body)
		req.Host = "airlock.test"
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := do(r2, "GET", "/v2/", nil); resp.StatusCode != 200 {
		t.Fatalf("r2 refuses r1's token: %d", resp.StatusCode)
	}
	if _, _, err := r1.ctr.Get(context.Background(), string(azmeta.SigningKey)); err != nil {
		t.Fatalf("the signing key is not in the shared store: %v", err)
	}

	// Push: started on r1, committed on r2; the cap of one session holds
	// across the replicas.
	resp := do(r1, "POST", "/v2/team/app/blobs/uploads/", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("POST on r1: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if resp := do(r2, "POST", "/v2/team/app/blobs/uploads/", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second session with push.maxUploads 1, on r2: %d", resp.StatusCode)
	}
	b := []byte("pushed through two replicas")
	d := digest.FromBytes(b)
	if resp := do(r2, "PUT", loc+"?digest="+d.String(), bytes.NewReader(b)); resp.StatusCode != 201 {
		t.Fatalf("PUT on r2: %d", resp.StatusCode)
	}

	// A blob nothing links, with a live fill record held by r1: r2's
	// collector keeps it.
	ctx := context.Background()
	fb := []byte("being filled")
	fd := digest.FromBytes(fb)
	if _, err := content.WriteBlob(ctx, r1.col.Store(), fd, fb); err != nil {
		t.Fatal(err)
	}
	fill := cluster.FillName(fd)
	if _, err := r1.ctr.Put(ctx, fill, []byte(`{}`), azure.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.ctr.AcquireLease(ctx, fill, azure.MinLease); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.col.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r2.ctr.Get(ctx, "blobs/sha256/"+fd.Encoded()); err != nil {
		t.Fatalf("r2's collector deleted a blob r1 is filling: %v", err)
	}
	if _, _, err := r2.ctr.Get(ctx, "blobs/sha256/"+d.Encoded()); err != nil {
		t.Fatalf("r2's collector deleted the pushed blob: %v", err)
	}
}

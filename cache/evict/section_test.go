package evict_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// heldWatch is a replica's way to Azure that records the requests sent
// while its exclusive section holds links back: from the gate record's
// write announcing the held phase to the lease's release.
type heldWatch struct {
	base *http.Client
	mu   sync.Mutex
	held bool
	from time.Time
	took time.Duration
	reqs []string // "METHOD path?comp=…&prefix=…" sent while held
}

func (h *heldWatch) Do(r *http.Request) (*http.Response, error) {
	gate := strings.HasSuffix(r.URL.Path, "/meta/exclusive")
	q := r.URL.Query()
	h.mu.Lock()
	if gate && q.Get("comp") == "lease" && header(r, "x-ms-lease-action") == "release" && h.held {
		h.held, h.took = false, time.Since(h.from)
	}
	if h.held {
		h.reqs = append(h.reqs, fmt.Sprintf("%s %s?comp=%s&prefix=%s", r.Method, r.URL.Path, q.Get("comp"), q.Get("prefix")))
	}
	h.mu.Unlock()
	resp, err := h.base.Do(r)
	if err == nil && gate && r.Method == http.MethodPut && q.Get("comp") == "" && resp.StatusCode < 300 {
		var rec struct{ Phase string }
		if b, derr := base64.StdEncoding.DecodeString(header(r, "x-ms-meta-rec")); derr == nil && json.Unmarshal(b, &rec) == nil && rec.Phase == "held" {
			h.mu.Lock()
			h.held, h.from = true, time.Now()
			h.mu.Unlock()
		}
	}
	return resp, err
}

// header is r's header name, whatever the case the SDK set it in.
func header(r *http.Request, name string) string {
	for k, v := range r.Header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// A collection on a realistic index holds links back only while it reads
// the index, decides and deletes: the store is walked before, while links
// go on, and no wait of any length happens while links are held (the
// section is shorter than the settle time, which a wait inside it would
// last at least). What it sends while links wait is bounded by the index
// and by what it deletes: a listing per kind of record, a few requests per
// evicted image and deleted blob.
func TestHeldSectionIsShort(t *testing.T) {
	t.Parallel()
	const (
		settle  = 5 * time.Second
		nImages = 120
		orphans = 10
	)
	srv := azuritetest.Start(t)
	ctx := context.Background()
	watch := &heldWatch{base: srv.HTTPClient}
	ctr := azuretest.Open(t, srv, "held", azure.WithTransport(watch))
	idx, err := azmeta.New(ctx, ctr, zap.NewNop(), nil, azmeta.WithSettle(settle))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() }) // waits for its reads in the background
	store, err := azstore.New(ctr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &gcReplica{ctr: ctr, idx: idx, store: store}
	base := time.Now().Add(-time.Duration(nImages+1) * time.Hour)
	var mu sync.Mutex
	var total int64
	var g errgroup.Group
	g.SetLimit(8)
	for i := range nImages {
		g.Go(func() error {
			img := putImage(t, r, fmt.Sprintf("team%02d/img%03d", i%12, i), 1000, base.Add(time.Duration(i)*time.Hour), meta.OriginCache)
			mu.Lock()
			total += img.size
			mu.Unlock()
			return nil
		})
	}
	for i := range orphans {
		g.Go(func() error {
			b := []byte(fmt.Sprintf("orphan %d", i))
			_, err := content.WriteBlob(ctx, store, digest.FromBytes(b), b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// Over the high watermark (0.9): a few images evicted down to the low
	// one (0.88).
	col, err := evict.New(store, idx, zap.NewNop(), prometheus.NewRegistry(),
		evict.Policy{MaxBytes: total * 100 / 92, HighWatermark: 0.9, LowWatermark: 0.88},
		evict.WithGrace(0), evict.WithFlushInterval(100*time.Millisecond), evict.WithCluster(evict.Cluster{}))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.EvictedImages == 0 || rep.DeletedBlobs < orphans {
		t.Fatalf("the collection evicted %d images and deleted %d blobs; the test wants both", rep.EvictedImages, rep.DeletedBlobs)
	}
	watch.mu.Lock()
	reqs, took := watch.reqs, watch.took
	watch.mu.Unlock()
	lists := 0
	for _, q := range reqs {
		if strings.Contains(q, "prefix=blobs/") {
			t.Fatalf("the store was walked while links waited: %s", q)
		}
		if strings.HasPrefix(q, "GET ") && strings.Contains(q, "comp=list") {
			lists++
		}
	}
	// Listings: tags, manifests, blob links, access times, pins (one page
	// each at this size). Per evicted image (each in a repository of its
	// own here): its tag, manifest, blob link, access times and
	// repository record, and listings of what the repository has left;
	// per deleted blob: a look and the delete.
	maxLists := 5 + 6*rep.EvictedImages
	bound := maxLists + 10*rep.EvictedImages + 2*rep.DeletedBlobs
	t.Logf("links held back %v (settle %v) for %d requests (%d listings) to evict %d images and delete %d blobs of %d images and %d orphans",
		took, settle, len(reqs), lists, rep.EvictedImages, rep.DeletedBlobs, nImages, orphans)
	if took <= 0 || took >= settle {
		t.Fatalf("links were held back %v: not within the settle time %v", took, settle)
	}
	if lists > maxLists || len(reqs) > bound {
		t.Fatalf("%d requests (%d listings) while links waited, want at most %d (%d listings)", len(reqs), lists, bound, maxLists)
	}
}

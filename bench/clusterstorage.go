package bench

// The airlock-cluster target's storage account, as the bench shapes and
// measures it: Azure's round trip added to each request
// (--storage-latency), and the requests of each run counted.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/airlock/airlock/internal/sleep"
	dto "github.com/prometheus/client_model/go"
)

// maxStorageLatency bounds --storage-latency: a round trip to a storage
// account in the cluster's region takes milliseconds, not seconds.
const maxStorageLatency = time.Second

// delayedAccount puts a proxy in front of acc's blob endpoint that holds
// each request for d before it forwards it, as the round trip to Azure
// Blob Storage would; the replicas reach acc through it. The shared key
// signs the account's paths, not the host, so the proxy changes nothing
// else. Stop stops the proxy, then acc.
func delayedAccount(acc *Account, d time.Duration) (*Account, error) {
	u, err := url.Parse(acc.ServiceURL)
	if err != nil {
		return nil, fmt.Errorf("storage account URL %q: %w", acc.ServiceURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("storage latency proxy: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	target := &url.URL{Scheme: u.Scheme, Host: u.Host}
	srv := &http.Server{
		Handler: &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
			Transport:     delayed{d: d, next: tr},
			FlushInterval: -1,
			// A replica killed mid-request (the failover scenario) is no
			// news for the bench's output.
			ErrorLog: log.New(io.Discard, "", 0),
		},
		ReadHeaderTimeout: 30 * time.Second,
	}
	// Serve returns at Stop; a proxy that fails before shows as the
	// replicas' storage errors.
	go func() { _ = srv.Serve(ln) }()
	out := *acc
	out.ServiceURL = (&url.URL{Scheme: "http", Host: ln.Addr().String(), Path: u.Path}).String()
	out.Stop = func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
		acc.Stop()
	}
	return &out, nil
}

// delayed holds each request for d before sending it.
type delayed struct {
	d    time.Duration
	next http.RoundTripper
}

func (t delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := sleep.For(r.Context(), t.d); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(r)
}

// storageMetric counts a replica's requests to its storage account by
// area (storage/azure.WithMetrics).
const storageMetric = "airlock_storage_requests_total"

// polled reports whether m counts requests a replica sends on a timer
// whatever the load (membership listings and container checks, the
// control state's): left out of a run's count.
func polled(m *dto.Metric) bool {
	return hasLabel(m, "area", "container") || hasLabel(m, "area", "control")
}

// storageRequests sums the requests the live replicas of rs sent to their
// storage account for serving (blobs, index, fill records), as their
// /metrics say now.
func (rs *replicaSet) storageRequests(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var sum float64
	for r, inst := range rs.replicas {
		rs.mu.Lock()
		killed := rs.killed[r]
		rs.mu.Unlock()
		if killed {
			continue
		}
		fams, err := metricFamilies(ctx, c, inst.url+"/metrics", "", "")
		if err != nil {
			return 0, fmt.Errorf("storage requests of %s: %w", inst.name, err)
		}
		for _, m := range fams[storageMetric].GetMetric() {
			if !polled(m) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum), nil
}

// storageMeter counts the storage requests of one run of a cluster
// target: the live replicas' count at the end less the one at the start.
// A replica killed during the run takes its count with it.
type storageMeter struct {
	rs     *replicaSet
	before int64
	err    error
}

func startStorageMeter(ctx context.Context, inst *instance) *storageMeter {
	if inst.cluster == nil {
		return nil
	}
	m := &storageMeter{rs: inst.cluster}
	m.before, m.err = m.rs.storageRequests(ctx)
	return m
}

// stop returns the run's count, 0 when it could not be read (or for a
// target that is not a cluster).
func (m *storageMeter) stop(ctx context.Context) int64 {
	if m == nil || m.err != nil {
		return 0
	}
	after, err := m.rs.storageRequests(ctx)
	if err != nil || after < m.before {
		return 0
	}
	return after - m.before
}

// writeStorage lists the cluster results' storage requests per run.
func (rep *Report) writeStorage(w io.Writer) {
	var cells []string
	for _, r := range rep.Results {
		if n := r.Summary.StorageRequests; n > 0 {
			cells = append(cells, fmt.Sprintf("%s %.0f", r.Key(), n))
		}
	}
	if len(cells) > 0 {
		fmt.Fprintf(w, "storage requests per run (%s, median; blobs, index and fill records of every live replica): %s\n",
			TargetCluster, strings.Join(cells, ", "))
	}
}

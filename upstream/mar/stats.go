package mar

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock/airlock/upstream/mar/fault"
)

// Kind is a request kind (see the fault package for the list).
type Kind = fault.Kind

// Request kinds, re-exported for Stats helpers.
const (
	KindPing      = fault.KindPing
	KindToken     = fault.KindToken
	KindCatalog   = fault.KindCatalog
	KindTags      = fault.KindTags
	KindManifest  = fault.KindManifest
	KindBlob      = fault.KindBlob
	KindBlobData  = fault.KindBlobData
	KindReferrers = fault.KindReferrers
	KindOther     = fault.KindOther
)

// Stats is the JSON served at GET /_mar/stats. Requests to /_mar/ are not
// counted.
//
// "The fetch" of a blob is its GET kind=blob-data on the data listener (the
// registry listener's GET kind=blob only answers 307); Stats.Fetches counts
// those.
type Stats struct {
	Requests      []RequestStat    `json:"requests"`      // one row per distinct key, sorted
	Statuses      map[string]int64 `json:"statuses"`      // by status code; "0" = connection dropped by a fault
	BytesSent     int64            `json:"bytesSent"`     // body bytes, both listeners
	BytesByDigest map[string]int64 `json:"bytesByDigest"` // body bytes of manifest and blob responses
	Connections   map[string]int64 `json:"connections"`   // accepted, by listener: "registry", "data"
}

// RequestStat counts requests sharing method, kind, repo, ref, digest and status.
type RequestStat struct {
	Method  string `json:"method"`
	Kind    Kind   `json:"kind"`
	Repo    string `json:"repo,omitempty"`
	Ref     string `json:"ref,omitempty"`    // the tag, for manifest requests by tag
	Digest  string `json:"digest,omitempty"` // requested or resolved digest
	Status  int    `json:"status"`           // 0 = dropped (unreachable fault)
	Count   int64  `json:"count"`
	Bytes   int64  `json:"bytes"`             // body bytes sent
	Aborted int64  `json:"aborted,omitempty"` // responses cut mid-body (cut fault or client gone)
}

// Filter selects RequestStat rows; zero fields match anything.
type Filter struct {
	Method string
	Kind   Kind
	Repo   string
	Ref    string
	Digest string
	Status int
}

func (f Filter) match(r RequestStat) bool {
	return (f.Method == "" || f.Method == r.Method) && (f.Kind == "" || f.Kind == r.Kind) &&
		(f.Repo == "" || f.Repo == r.Repo) && (f.Ref == "" || f.Ref == r.Ref) &&
		(f.Digest == "" || f.Digest == r.Digest) && (f.Status == 0 || f.Status == r.Status)
}

// Sum adds up the rows matching f (Count, Bytes and Aborted).
func (s Stats) Sum(f Filter) RequestStat {
	out := RequestStat{Method: f.Method, Kind: f.Kind, Repo: f.Repo, Ref: f.Ref, Digest: f.Digest, Status: f.Status}
	for _, r := range s.Requests {
		if f.match(r) {
			out.Count += r.Count
			out.Bytes += r.Bytes
			out.Aborted += r.Aborted
		}
	}
	return out
}

// Count returns how many requests had this method, kind and digest; empty
// strings match anything. Count("GET", KindBlobData, d) counts fetches of d
// whatever their status.
func (s Stats) Count(method string, kind Kind, digest string) int64 {
	return s.Sum(Filter{Method: method, Kind: kind, Digest: digest}).Count
}

// Fetches returns the number of successful (2xx) GETs of the blob's bytes on
// the data listener: the upstream fetches of that blob.
func (s Stats) Fetches(digest string) int64 {
	var n int64
	for _, r := range s.Requests {
		if r.Method == http.MethodGet && r.Kind == KindBlobData && r.Digest == digest && r.Status/100 == 2 {
			n += r.Count
		}
	}
	return n
}

// Total returns the number of counted requests.
func (s Stats) Total() int64 { return s.Sum(Filter{}).Count }

// counters accumulates Stats; safe for concurrent use.
type counters struct {
	mu    sync.Mutex
	rows  map[RequestStat]*RequestStat // key has zero Count/Bytes/Aborted
	conns map[string]int64
}

func newCounters() *counters {
	return &counters{rows: map[RequestStat]*RequestStat{}, conns: map[string]int64{}}
}

func (c *counters) request(key RequestStat, bytes int64, aborted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	row, ok := c.rows[key]
	if !ok {
		row = &key
		c.rows[key] = row
	}
	row.Count++
	row.Bytes += bytes
	if aborted {
		row.Aborted++
	}
}

func (c *counters) conn(listener string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns[listener]++
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows = map[RequestStat]*RequestStat{}
	c.conns = map[string]int64{}
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Requests: []RequestStat{}, Statuses: map[string]int64{}, BytesByDigest: map[string]int64{}, Connections: map[string]int64{}}
	for _, r := range c.rows {
		s.Requests = append(s.Requests, *r)
		s.Statuses[strconv.Itoa(r.Status)] += r.Count
		s.BytesSent += r.Bytes
		if r.Digest != "" && r.Bytes > 0 {
			s.BytesByDigest[r.Digest] += r.Bytes
		}
	}
	for k, v := range c.conns {
		s.Connections[k] = v
	}
	sort.Slice(s.Requests, func(i, j int) bool {
		a, b := s.Requests[i], s.Requests[j]
		ka := fmt.Sprintf("%s %s %s %s %s %03d", a.Kind, a.Repo, a.Digest, a.Ref, a.Method, a.Status)
		kb := fmt.Sprintf("%s %s %s %s %s %03d", b.Kind, b.Repo, b.Digest, b.Ref, b.Method, b.Status)
		return ka < kb
	})
	return s
}

// FetchStats reads GET <baseURL>/_mar/stats; baseURL is the registry URL
// ("http://127.0.0.1:6000").
func FetchStats(ctx context.Context, baseURL string) (Stats, error) {
	var s Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/_mar/stats", nil)
	if err != nil {
		return s, fmt.Errorf("mar stats: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("mar stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("mar stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("mar stats: %w", err)
	}
	return s, nil
}

// ResetStats zeroes the counters of the emulator at baseURL.
func ResetStats(ctx context.Context, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+"/_mar/stats/reset", nil)
	if err != nil {
		return fmt.Errorf("mar stats reset: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("mar stats reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("mar stats reset: %s", resp.Status)
	}
	return nil
}

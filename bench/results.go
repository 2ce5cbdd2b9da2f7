package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Schema names the results.json format; bump it when fields change meaning.
const Schema = "airlock-bench/1"

// Report is results.json: everything measured in one bench invocation.
type Report struct {
	Schema    string        `json:"schema"`
	Started   time.Time     `json:"started"`
	DurationS float64       `json:"durationS"`
	Command   string        `json:"command"`
	Machine   Machine       `json:"machine"`
	Options   ReportOptions `json:"options"`
	Catalog   CatalogInfo   `json:"catalog"`
	// Registries are the targets of a --registry run.
	Registries []RegistryInfo `json:"registries,omitempty"`
	Results    []Result       `json:"results"`
	Checks     []Check        `json:"checks"`
	Errors     []string       `json:"errors,omitempty"` // runs that could not be measured
}

// Machine describes where the bench ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpuModel,omitempty"`
	MemBytes int64  `json:"memBytes,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Go       string `json:"go"`
	Load     string `json:"loadavg,omitempty"`    // /proc/loadavg at the start
	LoadEnd  string `json:"loadavgEnd,omitempty"` // and at the end
}

// ReportOptions are the options that shaped the figures.
type ReportOptions struct {
	Registries []string `json:"registries,omitempty"` // --registry: targets the bench did not start
	Prefix     string   `json:"prefix,omitempty"`
	Arrival    string   `json:"arrival,omitempty"`
	Agents     int      `json:"agents,omitempty"` // load machines (0: this process)
	Scenarios  []string `json:"scenarios"`
	Targets    []string `json:"targets"`
	Nodes      int      `json:"nodes"`
	Runs       int      `json:"runs"`
	Catalog    string   `json:"catalog"`
	Scale      string   `json:"scale"`
	Minor      string   `json:"kubernetesMinor"`
	Seed       uint64   `json:"seed"`
	LargeSize  int64    `json:"largeBlobBytes"`
	RangeSize  int64    `json:"rangeBytes"`
	RangeCount int      `json:"rangeCount"`
	// StorageLatencyMS is what --storage-latency added to each request of
	// the airlock-cluster replicas to their storage account.
	StorageLatencyMS float64 `json:"storageLatencyMs,omitempty"`
}

// RegistryInfo is a registry the bench did not start.
type RegistryInfo struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Prefix      string `json:"prefix,omitempty"`
	Credentials string `json:"credentials"`        // which credentials nodes used
	Upstream    string `json:"upstream,omitempty"` // where its upstream requests were counted
}

// CatalogInfo is what a node pulls: the bootstrap set for linux/amd64.
type CatalogInfo struct {
	Images    []string `json:"images"`
	Blobs     int      `json:"blobs"`     // distinct blobs of one node's pull
	BlobBytes int64    `json:"blobBytes"` // their total size
	LargeBlob string   `json:"largeBlob,omitempty"`
	LargeSize int64    `json:"largeBlobSize,omitempty"`
}

// Result is one scenario (and phase) on one target over all runs.
type Result struct {
	Scenario string      `json:"scenario"`
	Phase    string      `json:"phase,omitempty"`   // "cold" or "warm" for ranges
	Arrival  string      `json:"arrival,omitempty"` // how nodes arrived, when not all at once
	Target   string      `json:"target"`
	Runs     []RunResult `json:"runs"`
	Summary  Summary     `json:"summary"`
}

// Key returns "scenario[/phase][ @arrival]".
func (r Result) Key() string {
	k := r.Scenario
	if r.Phase != "" {
		k += "/" + r.Phase
	}
	if r.Arrival != "" {
		k += " @" + r.Arrival
	}
	return k
}

// RunResult is one measured run.
type RunResult struct {
	Run          int       `json:"run"`
	Order        int       `json:"order"` // position among the targets in this run (interleaving)
	Error        string    `json:"error,omitempty"`
	WallS        float64   `json:"wallS"`
	Clients      int       `json:"clients"` // nodes, or concurrent Range GETs
	PullS        []float64 `json:"pullS"`   // per node (per range) duration, seconds
	Pull         Dist      `json:"pull"`
	TTFB         Dist      `json:"ttfbS"` // blob GETs: request to first body byte, seconds
	Bytes        int64     `json:"bytes"` // bytes clients received
	MBps         float64   `json:"mbps"`  // Bytes / WallS, 10^6 bytes per second
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"` // error answers and broken bodies clients saw (before retries)
	Retries      int64     `json:"retries"`
	FailedPulls  int       `json:"failedPulls"`            // nodes (ranges) that failed after retries
	Corrupt      int64     `json:"corrupt"`                // complete responses with wrong bytes
	RangeIgnored int       `json:"rangeIgnored,omitempty"` // ranges: Range GETs answered 200 with the whole blob
	FirstFailure string    `json:"firstFailure,omitempty"`
	Upstream     Upstream  `json:"upstream"`
	Proc         *Proc     `json:"proc,omitempty"` // child-process targets only
	// StorageRequests are the requests the airlock-cluster replicas sent
	// to their storage account for the run (not their timed polls).
	StorageRequests int64 `json:"storageRequests,omitempty"`

	Failover    *FailoverRun     `json:"failover,omitempty"`    // the failover scenario's own figures
	Arrival     string           `json:"arrival,omitempty"`     // how nodes arrived, when not all at once
	ErrorKinds  map[string]int64 `json:"errorKinds,omitempty"`  // errors clients saw (before retries), by kind
	FailedKinds map[string]int64 `json:"failedKinds,omitempty"` // failed nodes, by the kind of their error
	Images      []ImageStat      `json:"images,omitempty"`      // per image of the set
	PerNode     []NodeRecord     `json:"perNode,omitempty"`     // raw per-node numbers
	Hist        *Hists           `json:"hist,omitempty"`        // runs on load machines: the merged histograms
	Agents      []AgentPart      `json:"agents,omitempty"`      // runs on load machines: each machine's part
}

// setTally copies a tally's counts.
func (r *RunResult) setTally(t Tally) {
	r.Bytes, r.Requests, r.Errors, r.Retries, r.Corrupt, r.FailedPulls = t.Bytes, t.Requests, t.Errors, t.Retries, t.Corrupt, t.FailedPulls
	r.ErrorKinds, r.FailedKinds = t.ErrorKinds, t.FailedKinds
}

// ImageStat is the time nodes took to pull one image of the set.
type ImageStat struct {
	Image  string `json:"image"`
	Pull   Dist   `json:"pull"`   // seconds, nodes that pulled it
	Failed int    `json:"failed"` // nodes that could not
}

// Hists are a run's latency histograms; merged exactly across load
// machines.
type Hists struct {
	Pull   Histogram   `json:"pull"`   // per node: time to pull the whole set
	TTFB   Histogram   `json:"ttfb"`   // per blob GET: request to first body byte
	Images []Histogram `json:"images"` // per image of the set, in order
}

// merge adds o's histograms.
func (h *Hists) merge(o *Hists) {
	h.Pull.Merge(&o.Pull)
	h.TTFB.Merge(&o.TTFB)
	for len(h.Images) < len(o.Images) {
		h.Images = append(h.Images, Histogram{})
	}
	for i := range o.Images {
		h.Images[i].Merge(&o.Images[i])
	}
}

// AgentPart is one load machine's part of a run: its counts and
// histograms, which the run's figures add up from.
type AgentPart struct {
	Agent        int     `json:"agent"`
	Name         string  `json:"name"`         // host name of the machine
	ClockOffsetS float64 `json:"clockOffsetS"` // its clock minus the coordinator's, estimated
	ClockRTTS    float64 `json:"clockRttS"`    // round trip of the estimate
	StartLateS   float64 `json:"startLateS"`   // how late it started after the barrier, its clock
	Tally
	Hist Hists `json:"hist"`
}

// Upstream is what the emulator counted during the measured part of a run.
type Upstream struct {
	Requests          int64            `json:"requests"`     // every request, all kinds and statuses
	BlobFetches       int64            `json:"blobFetches"`  // successful blob-data GETs ("the fetch")
	BlobDataGETs      int64            `json:"blobDataGETs"` // blob-data GETs, any status
	ManifestGETs      int64            `json:"manifestGETs"` // manifest GETs
	Bytes             int64            `json:"bytes"`        // body bytes sent
	BlobBytes         int64            `json:"blobBytes"`    // body bytes of the scenario's blobs
	Blobs             int              `json:"blobs"`        // distinct blobs the scenario needs
	BlobSize          int64            `json:"blobSize"`     // their total size
	FetchesPerBlobMin int64            `json:"fetchesPerBlobMin"`
	FetchesPerBlobMax int64            `json:"fetchesPerBlobMax"`
	BytesRatio        float64          `json:"bytesRatio"` // BlobBytes / BlobSize
	Errors            int64            `json:"errors"`     // 429 and 5xx answers (faults included) and dropped connections
	ByKind            map[string]int64 `json:"byKind"`     // request counts by "METHOD kind status"
	PerDigest         []DigestStat     `json:"perDigest"`

	// Source says where the counts come from: "mar" (the emulator's
	// /_mar/stats, per blob), "airlock" (the target's /metrics: requests,
	// bytes, cache hits), "" when nothing was counted.
	Source      string `json:"source,omitempty"`
	CacheHits   int64  `json:"cacheHits,omitempty"`   // airlock: requests answered from its store
	CacheMisses int64  `json:"cacheMisses,omitempty"` // airlock: requests that started an upstream fetch
	Coalesced   int64  `json:"coalesced,omitempty"`   // airlock: requests that joined a fetch already running
}

// DigestStat is the upstream traffic for one blob.
type DigestStat struct {
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
	Fetches int64  `json:"fetches"` // successful blob-data GETs
	GETs    int64  `json:"gets"`    // blob-data GETs, any status
	Bytes   int64  `json:"bytes"`
}

// Proc is a child target's resource use during the measured part of a run.
type Proc struct {
	IdleRSS    int64   `json:"idleRSS"`    // bytes, just before
	PeakRSS    int64   `json:"peakRSS"`    // bytes, VmHWM reset just before
	AboveIdle  int64   `json:"aboveIdle"`  // PeakRSS - IdleRSS
	CPUS       float64 `json:"cpuS"`       // user+system seconds
	CPUSPerGiB float64 `json:"cpuSPerGiB"` // CPUS per GiB served to clients
}

// Summary is the median of the runs (worst case for correctness counts).
type Summary struct {
	Runs              int     `json:"runs"`    // measured
	Errored           int     `json:"errored"` // runs that could not be measured
	WallS             float64 `json:"wallS"`
	PullP50           float64 `json:"pullP50S"`
	PullP95           float64 `json:"pullP95S"`
	PullP99           float64 `json:"pullP99S"`
	PullMax           float64 `json:"pullMaxS"`
	TTFBP50           float64 `json:"ttfbP50S"`
	TTFBP90           float64 `json:"ttfbP90S"`
	TTFBP95           float64 `json:"ttfbP95S"`
	MBps              float64 `json:"mbps"`
	Errors            int64   `json:"errors"`      // sum over runs
	Retries           int64   `json:"retries"`     // sum over runs
	FailedPulls       int     `json:"failedPulls"` // sum over runs
	Corrupt           int64   `json:"corrupt"`     // sum over runs
	UpstreamRequests  float64 `json:"upstreamRequests"`
	UpstreamBytes     float64 `json:"upstreamBytes"`
	BlobFetches       float64 `json:"blobFetches"`
	FetchesPerBlobMin int64   `json:"fetchesPerBlobMin"` // min over runs
	FetchesPerBlobMax int64   `json:"fetchesPerBlobMax"` // max over runs
	BytesRatio        float64 `json:"bytesRatio"`
	UpstreamSource    string  `json:"upstreamSource,omitempty"` // where upstream was counted ("": nowhere)
	FetchesPerBlob    float64 `json:"fetchesPerBlob,omitempty"` // blob fetches over blobs, median run
	PeakAboveIdle     float64 `json:"peakAboveIdle,omitempty"`  // bytes
	PeakRSS           float64 `json:"peakRSS,omitempty"`
	CPUSPerGiB        float64 `json:"cpuSPerGiB,omitempty"`
	StorageRequests   float64 `json:"storageRequests,omitempty"` // airlock-cluster: median run
}

// Check is one of the targets for airlock, judged on this run.
type Check struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Pass   bool   `json:"pass"`
	Judged bool   `json:"judged"` // false when a needed measurement is missing
}

// summarize fills r.Summary from r.Runs.
func (r *Result) summarize() {
	var ok []RunResult
	s := Summary{FetchesPerBlobMin: -1}
	for _, run := range r.Runs {
		if run.Error != "" {
			s.Errored++
			continue
		}
		ok = append(ok, run)
		s.Errors += run.Errors
		s.Retries += run.Retries
		s.FailedPulls += run.FailedPulls
		s.Corrupt += run.Corrupt
		s.FetchesPerBlobMax = max(s.FetchesPerBlobMax, run.Upstream.FetchesPerBlobMax)
		if s.FetchesPerBlobMin < 0 || run.Upstream.FetchesPerBlobMin < s.FetchesPerBlobMin {
			s.FetchesPerBlobMin = run.Upstream.FetchesPerBlobMin
		}
	}
	s.Runs = len(ok)
	if s.FetchesPerBlobMin < 0 {
		s.FetchesPerBlobMin = 0
	}
	s.WallS = medianOf(ok, func(x RunResult) float64 { return x.WallS })
	s.PullP50 = medianOf(ok, func(x RunResult) float64 { return x.Pull.P50 })
	s.PullP95 = medianOf(ok, func(x RunResult) float64 { return x.Pull.P95 })
	s.PullP99 = medianOf(ok, func(x RunResult) float64 { return x.Pull.P99 })
	s.PullMax = medianOf(ok, func(x RunResult) float64 { return x.Pull.Max })
	s.TTFBP50 = medianOf(ok, func(x RunResult) float64 { return x.TTFB.P50 })
	s.TTFBP90 = medianOf(ok, func(x RunResult) float64 { return x.TTFB.P90 })
	s.TTFBP95 = medianOf(ok, func(x RunResult) float64 { return x.TTFB.P95 })
	s.MBps = medianOf(ok, func(x RunResult) float64 { return x.MBps })
	s.UpstreamRequests = medianOf(ok, func(x RunResult) float64 { return float64(x.Upstream.Requests) })
	s.StorageRequests = medianOf(ok, func(x RunResult) float64 { return float64(x.StorageRequests) })
	s.UpstreamBytes = medianOf(ok, func(x RunResult) float64 { return float64(x.Upstream.Bytes) })
	s.BlobFetches = medianOf(ok, func(x RunResult) float64 { return float64(x.Upstream.BlobFetches) })
	s.BytesRatio = medianOf(ok, func(x RunResult) float64 { return x.Upstream.BytesRatio })
	s.FetchesPerBlob = medianOf(ok, func(x RunResult) float64 {
		return float64(x.Upstream.BlobFetches) / float64(max(1, x.Upstream.Blobs))
	})
	for _, run := range ok {
		if run.Upstream.Source != "" {
			s.UpstreamSource = run.Upstream.Source
		}
	}
	var procs []*Proc
	for _, run := range ok {
		if run.Proc != nil {
			procs = append(procs, run.Proc)
		}
	}
	if len(procs) > 0 {
		s.PeakAboveIdle = medianOf(procs, func(p *Proc) float64 { return float64(p.AboveIdle) })
		s.PeakRSS = medianOf(procs, func(p *Proc) float64 { return float64(p.PeakRSS) })
		s.CPUSPerGiB = medianOf(procs, func(p *Proc) float64 { return p.CPUSPerGiB })
	}
	r.Summary = s
}

// Result returns the result for scenario/phase on target, if measured.
func (rep *Report) Result(scenario, phase, target string) (Result, bool) {
	for _, r := range rep.Results {
		if r.Scenario == scenario && r.Phase == phase && r.Target == target {
			return r, true
		}
	}
	return Result{}, false
}

// WriteJSON writes results.json into dir.
func (rep *Report) WriteJSON(dir string) (string, error) {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("results: %w", err)
	}
	p := filepath.Join(dir, "results.json")
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("results: %w", err)
	}
	return p, nil
}

package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/internal/sleep"
)

// event is one cluster event on one target as one machine plays it: the
// nodes of its slice (node i of the event belongs to machine i % agents,
// so every rolling batch and every second of a ramp is spread over all
// machines), arriving as the arrival says from start on.
type event struct {
	inst    *instance
	set     []image
	nodes   int // nodes in the whole event, every machine's
	arrival Arrival
	agent   int       // this machine, 0-based
	agents  int       // machines in the event (0 counts as 1)
	start   time.Time // when the event starts, this machine's clock
	// batchDone returns once every machine has finished rolling batch b;
	// nil when this machine plays every node.
	batchDone func(ctx context.Context, b int) error
	// progress is told nodes done, running and failed (of this machine's)
	// every progressEvery and once at the end; may be nil.
	progress func(done, running, failed int)
	// first is the index of the event's first node among the run's: on a
	// cluster, node first+i starts on replica (first+i) mod replicas, so
	// the round-robin goes on across a run's events.
	first int
	watch *blobWatch // a blob the nodes report progress on; nil: none
}

// progressEvery is how often an event reports its progress.
const progressEvery = 500 * time.Millisecond

// outcome is one node's result.
type outcome struct {
	index int
	res   nodeResult
}

// slice returns the event's node indices on this machine.
func (ev *event) slice() []int {
	k := max(ev.agents, 1)
	var out []int
	for i := ev.agent; i < ev.nodes; i += k {
		out = append(out, i)
	}
	return out
}

// run plays the machine's nodes and returns their outcomes, in slice order.
// It returns early (with the nodes measured so far) if a rolling batch
// barrier fails.
func (ev *event) run(ctx context.Context) ([]outcome, error) {
	idx := ev.slice()
	outs := make([]outcome, len(idx))
	for k := range outs {
		outs[k].index = -1 // not run
	}
	var done, running, failed atomic.Int64
	report := func() {
		if ev.progress != nil {
			ev.progress(int(done.Load()), int(running.Load()), int(failed.Load()))
		}
	}
	halt := every(progressEvery, report)
	defer func() { halt(); report() }()

	one := func(k int, wait time.Duration) {
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		n := newNodeAt(ev.inst, ev.first+idx[k])
		n.watch = ev.watch
		defer n.close()
		running.Add(1)
		n.pull(ctx, ev.set)
		running.Add(-1)
		outs[k] = outcome{index: idx[k], res: n.result()}
		if outs[k].res.Failed != nil {
			failed.Add(1)
		}
		done.Add(1)
	}
	ran := func() []outcome {
		return slices.DeleteFunc(outs, func(o outcome) bool { return o.index < 0 })
	}
	if err := sleep.Until(ctx, ev.start); err != nil {
		return nil, err
	}
	t0 := time.Now()
	for b := range ev.arrival.batches(ev.nodes) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for k, i := range idx {
			if ev.arrival.batch(i) != b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				one(k, ev.arrival.offset(i)-time.Since(t0))
			}()
		}
		close(start)
		wg.Wait()
		if ev.batchDone != nil && b < ev.arrival.batches(ev.nodes)-1 {
			if err := ev.batchDone(ctx, b); err != nil {
				return ran(), fmt.Errorf("rolling batch %d: %w", b, err)
			}
		}
	}
	return ran(), nil
}

// every calls f every d until the returned function is called (which
// returns once f is not running; calling it again does nothing).
func every(d time.Duration, f func()) (halt func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { once.Do(func() { close(stop); wg.Wait() }) }
}

// NodeRecord is one node's raw numbers in results.json.
type NodeRecord struct {
	Node     int       `json:"node"`             // index in the event, 0-based
	Agent    int       `json:"agent"`            // the load machine that played it
	StartS   float64   `json:"startS"`           // when it started, seconds after the event's start
	PullS    float64   `json:"pullS"`            // time to pull the whole set
	ImagesS  []float64 `json:"imagesS"`          // per image of the set, in order; 0 when it failed
	Bytes    int64     `json:"bytes"`            // received
	Requests int64     `json:"requests"`         // sent
	Errors   int64     `json:"errors"`           // error answers and broken bodies seen (before retries)
	Retries  int64     `json:"retries"`          // requests retried
	Failed   string    `json:"failed,omitempty"` // the first image that could not be pulled, and why
}

// Tally is what a set of nodes adds up to.
type Tally struct {
	Nodes       int              `json:"nodes"`
	Bytes       int64            `json:"bytes"`
	Requests    int64            `json:"requests"`
	Errors      int64            `json:"errors"`
	Retries     int64            `json:"retries"`
	Corrupt     int64            `json:"corrupt"`
	FailedPulls int              `json:"failedPulls"`
	ErrorKinds  map[string]int64 `json:"errorKinds,omitempty"`  // errors clients saw, by kind
	FailedKinds map[string]int64 `json:"failedKinds,omitempty"` // failed nodes, by the kind of their error
}

// add adds one node's result: a tally of one node.
func (t *Tally) add(r nodeResult) {
	one := Tally{Nodes: 1, Bytes: r.Bytes, Requests: r.Requests, Errors: r.Errors, Retries: r.Retries, Corrupt: r.Corrupt, ErrorKinds: r.Kinds}
	if r.Failed != nil {
		one.FailedPulls, one.FailedKinds = 1, map[string]int64{errKind(r.Failed): 1}
	}
	t.merge(one)
}

// merge adds another tally.
func (t *Tally) merge(o Tally) {
	t.Nodes += o.Nodes
	t.Bytes += o.Bytes
	t.Requests += o.Requests
	t.Errors += o.Errors
	t.Retries += o.Retries
	t.Corrupt += o.Corrupt
	t.FailedPulls += o.FailedPulls
	addKinds(&t.ErrorKinds, o.ErrorKinds)
	addKinds(&t.FailedKinds, o.FailedKinds)
}

func addKinds(dst *map[string]int64, src map[string]int64) {
	for k, v := range src {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		(*dst)[k] += v
	}
}

// record turns an outcome into its NodeRecord.
func record(o outcome, agent int, start time.Time) NodeRecord {
	r := o.res
	nr := NodeRecord{Node: o.index, Agent: agent, PullS: r.Duration.Seconds(), Bytes: r.Bytes, Requests: r.Requests,
		Errors: r.Errors, Retries: r.Retries, ImagesS: make([]float64, len(r.Images))}
	if !r.Start.IsZero() {
		nr.StartS = r.Start.Sub(start).Seconds()
	}
	for i, d := range r.Images {
		nr.ImagesS[i] = d.Seconds()
	}
	if r.Failed != nil {
		nr.Failed = r.Failed.Error()
	}
	return nr
}

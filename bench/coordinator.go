package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Coordinator timing.
const (
	startLead    = 500 * time.Millisecond // the barrier is at least this far in the future
	maxAgentBody = 256 << 20
)

// coordinator plays a plan on K `airlock bench agent` machines: it waits
// for them to join, gives each its slice (node i to agent i % K), starts
// every step on all of them at one instant (a start time in the future on
// its clock; each agent converts it with its estimated clock offset),
// holds rolling batches until every agent finished the last one, and
// collects their reports.
type coordinator struct {
	opts *Options
	plan *agentPlan
	ln   net.Listener
	srv  *http.Server

	mu       sync.Mutex
	names    []string // by agent; "" until joined
	offsets  []float64
	rtts     []float64
	joined   int
	allIn    chan struct{}
	abortErr error
	aborted  chan struct{}
	steps    map[int]*stepState
}

// stepState is one step's barriers and reports.
type stepState struct {
	ready    map[int]bool
	allReady chan struct{}
	start    int64 // coordinator clock, Unix ns; set before goCh closes
	goCh     chan struct{}
	batches  map[int]map[int]bool
	batchCh  map[int]chan struct{}
	reports  map[int]agentReport
	allDone  chan struct{}
	progress map[int]progressRequest
}

// startCoordinator listens on opts.Listen and serves the agents' API.
func startCoordinator(ctx context.Context, opts *Options, plan *agentPlan) (*coordinator, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", opts.Listen, err)
	}
	k := opts.Agents
	c := &coordinator{opts: opts, plan: plan, ln: ln, names: make([]string, k), offsets: make([]float64, k), rtts: make([]float64, k),
		allIn: make(chan struct{}), aborted: make(chan struct{}), steps: map[int]*stepState{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathJoin, c.join)
	mux.HandleFunc("GET "+pathTime, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, timeReply{UnixNano: time.Now().UnixNano()})
	})
	mux.HandleFunc("POST "+pathReady, c.ready)
	mux.HandleFunc("POST "+pathBatch, c.batch)
	mux.HandleFunc("POST "+pathProgress, c.progress)
	mux.HandleFunc("POST "+pathResult, c.result)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Addr is where the coordinator listens.
func (c *coordinator) Addr() string { return c.ln.Addr().String() }

// close calls off whatever still waits and stops serving.
func (c *coordinator) close() {
	c.abort(errors.New("the coordinator stopped"))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(sctx)
}

// abort calls the run off with err (the first reason wins).
func (c *coordinator) abort(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abortErr == nil {
		c.abortErr = err
		close(c.aborted)
	}
}

func (c *coordinator) abortReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abortErr == nil {
		return ""
	}
	return c.abortErr.Error()
}

// waitAgents waits until every agent joined (at most opts.WaitAgents).
func (c *coordinator) waitAgents(ctx context.Context) error {
	if c.opts.Notice != nil {
		c.opts.Notice(fmt.Sprintf("coordinator on %s: waiting for %d agents (airlock bench agent --coordinator http://%s)", c.Addr(), c.opts.Agents, c.Addr()))
	}
	return c.wait(ctx, c.allIn, c.opts.WaitAgents, func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Sprintf("only %d of %d agents connected to %s within %v", c.joined, c.opts.Agents, c.Addr(), c.opts.WaitAgents)
	})
}

// wait waits for ch; on a timeout or ctx's end the run is called off.
func (c *coordinator) wait(ctx context.Context, ch chan struct{}, timeout time.Duration, late func() string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-c.aborted:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.abortErr
	case <-ctx.Done():
		c.abort(ctx.Err())
		return ctx.Err()
	case <-t.C:
		err := errors.New(late())
		c.abort(err)
		return err
	}
}

// step returns the state of step i, made on first use.
func (c *coordinator) step(i int) *stepState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.steps[i]
	if s == nil {
		s = &stepState{ready: map[int]bool{}, allReady: make(chan struct{}), goCh: make(chan struct{}),
			batches: map[int]map[int]bool{}, batchCh: map[int]chan struct{}{}, reports: map[int]agentReport{},
			allDone: make(chan struct{}), progress: map[int]progressRequest{}}
		c.steps[i] = s
	}
	return s
}

// missing lists the agents not in have.
func (c *coordinator) missing(have map[int]bool) string {
	var out []string
	for a := range c.opts.Agents {
		if !have[a] {
			out = append(out, fmt.Sprintf("%d (%s)", a, c.names[a]))
		}
	}
	return strings.Join(out, ", ")
}

// play starts step st on every agent and returns their reports.
func (c *coordinator) play(ctx context.Context, st stepSpec) ([]agentReport, error) {
	s := c.step(st.Step)
	err := c.wait(ctx, s.allReady, c.opts.RunTimeout, func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Sprintf("agents %s were not ready for step %d within %v", c.missing(s.ready), st.Step+1, c.opts.RunTimeout)
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	lead := startLead + 4*time.Duration(slices.Max(c.rtts)*float64(time.Second))
	s.start = time.Now().Add(lead).UnixNano()
	close(s.goCh)
	c.mu.Unlock()

	haltProgress := func() {}
	if p := c.opts.NodeProgress; p != nil {
		haltProgress = every(progressEvery, func() {
			var d, r, f int
			c.mu.Lock()
			for _, pr := range s.progress {
				d, r, f = d+pr.Done, r+pr.Running, f+pr.Failed
			}
			c.mu.Unlock()
			p(d, r, f, c.plan.Nodes)
		})
	}
	defer haltProgress()
	err = c.wait(ctx, s.allDone, c.opts.RunTimeout+lead, func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		have := map[int]bool{}
		for a := range s.reports {
			have[a] = true
		}
		return fmt.Sprintf("agents %s did not report step %d within %v", c.missing(have), st.Step+1, c.opts.RunTimeout)
	})
	if err != nil {
		return nil, err
	}
	haltProgress() // no stale count after the final one
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]agentReport, 0, len(s.reports))
	var done, failed int
	for a := range c.opts.Agents {
		out = append(out, s.reports[a])
		done, failed = done+s.reports[a].Part.Nodes, failed+s.reports[a].Part.FailedPulls
	}
	if p := c.opts.NodeProgress; p != nil {
		p(done, 0, failed, c.plan.Nodes)
	}
	return out, nil
}

// decode reads a JSON request body.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAgentBody)).Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// validAgent checks an agent number in a request.
func (c *coordinator) validAgent(w http.ResponseWriter, a, step int) bool {
	if a < 0 || a >= c.opts.Agents || step < 0 || step > len(c.plan.Steps) {
		http.Error(w, fmt.Sprintf("agent %d, step %d: out of range", a, step), http.StatusBadRequest)
		return false
	}
	return true
}

func (c *coordinator) join(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if !decode(w, r, &req) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abortErr != nil {
		http.Error(w, "the run was called off: "+c.abortErr.Error(), http.StatusConflict)
		return
	}
	if c.joined == c.opts.Agents {
		http.Error(w, fmt.Sprintf("the coordinator already has its %d agents", c.opts.Agents), http.StatusConflict)
		return
	}
	a := req.Index
	switch {
	case a >= c.opts.Agents:
		http.Error(w, fmt.Sprintf("index %d: the coordinator waits for %d agents (0..%d)", a, c.opts.Agents, c.opts.Agents-1), http.StatusBadRequest)
		return
	case a >= 0 && c.names[a] != "":
		http.Error(w, fmt.Sprintf("index %d is taken by %s", a, c.names[a]), http.StatusConflict)
		return
	case a < 0:
		a = slices.Index(c.names, "")
	}
	c.names[a] = cmpOr(req.Name, fmt.Sprintf("agent-%d", a))
	if c.joined++; c.joined == c.opts.Agents {
		close(c.allIn)
	}
	if c.opts.Notice != nil {
		c.opts.Notice(fmt.Sprintf("agent %d joined: %s from %s (%d of %d)", a, c.names[a], r.RemoteAddr, c.joined, c.opts.Agents))
	}
	writeJSON(w, joinReply{Agent: a, Agents: c.opts.Agents, Plan: *c.plan})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *coordinator) ready(w http.ResponseWriter, r *http.Request) {
	var req readyRequest
	if !decode(w, r, &req) || !c.validAgent(w, req.Agent, req.Step) {
		return
	}
	if req.Error != "" {
		c.abort(fmt.Errorf("agent %d (%s): %s", req.Agent, c.name(req.Agent), req.Error))
		writeJSON(w, readyReply{Abort: c.abortReason()})
		return
	}
	if req.Step == len(c.plan.Steps) {
		writeJSON(w, readyReply{Done: true})
		return
	}
	s := c.step(req.Step)
	c.mu.Lock()
	c.offsets[req.Agent], c.rtts[req.Agent] = req.ClockOffsetS, req.ClockRTTS
	if s.ready[req.Agent] = true; len(s.ready) == c.opts.Agents {
		select {
		case <-s.allReady:
		default:
			close(s.allReady)
		}
	}
	c.mu.Unlock()
	select {
	case <-s.goCh:
		c.mu.Lock()
		start := s.start
		c.mu.Unlock()
		writeJSON(w, readyReply{StartUnixNano: start})
	case <-c.aborted:
		writeJSON(w, readyReply{Abort: c.abortReason()})
	case <-r.Context().Done():
	}
}

func (c *coordinator) name(a int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[a]
}

func (c *coordinator) batch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !decode(w, r, &req) || !c.validAgent(w, req.Agent, req.Step) {
		return
	}
	s := c.step(req.Step)
	c.mu.Lock()
	if s.batches[req.Batch] == nil {
		s.batches[req.Batch] = map[int]bool{}
		s.batchCh[req.Batch] = make(chan struct{})
	}
	ch := s.batchCh[req.Batch]
	if s.batches[req.Batch][req.Agent] = true; len(s.batches[req.Batch]) == c.opts.Agents {
		close(ch)
	}
	c.mu.Unlock()
	select {
	case <-ch:
		writeJSON(w, abortReply{})
	case <-c.aborted:
		writeJSON(w, abortReply{Abort: c.abortReason()})
	case <-r.Context().Done():
	}
}

func (c *coordinator) progress(w http.ResponseWriter, r *http.Request) {
	var req progressRequest
	if !decode(w, r, &req) || !c.validAgent(w, req.Agent, req.Step) {
		return
	}
	s := c.step(req.Step)
	c.mu.Lock()
	s.progress[req.Agent] = req
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *coordinator) result(w http.ResponseWriter, r *http.Request) {
	var req resultRequest
	if !decode(w, r, &req) || !c.validAgent(w, req.Agent, req.Step) {
		return
	}
	if req.Error != "" {
		c.abort(fmt.Errorf("agent %d (%s), step %d: %s", req.Agent, c.name(req.Agent), req.Step+1, req.Error))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s := c.step(req.Step)
	c.mu.Lock()
	req.Report.Part.Agent = req.Agent
	for i := range req.Report.Records {
		req.Report.Records[i].Agent = req.Agent
	}
	if _, dup := s.reports[req.Agent]; !dup {
		s.reports[req.Agent] = req.Report
		if len(s.reports) == c.opts.Agents {
			close(s.allDone)
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/internal/sleep"
	"github.com/google/go-containerregistry/pkg/authn"
	"go.uber.org/zap"
)

// Agent timing.
const (
	joinPatience = 10 * time.Minute // keep trying to reach the coordinator this long (its pod may start after the agents')
	clockSamples = 8
)

// AgentOptions configure `airlock bench agent`.
type AgentOptions struct {
	Coordinator string // http://host:port of `airlock bench --agents K --listen ...`
	Name        string // this machine in reports; default its host name
	// Index asks for a slice (0..K-1); -1 takes any. $JOB_COMPLETION_INDEX
	// (a Kubernetes Indexed Job) is the default.
	Index    int
	Auth     AuthOptions
	Keychain authn.Keychain // nil: authn.DefaultKeychain
	// Progress is told as each step starts; may be nil.
	Progress func(step, steps int, what string)
	// NodeProgress is told this machine's nodes done, running and failed
	// during each step; may be nil.
	NodeProgress func(done, running, failed, total int)
	// Notice is told what the agent is doing (joined, step started); may
	// be nil.
	Notice func(msg string)
	Log    *zap.Logger
}

// agentClient talks to the coordinator.
type agentClient struct {
	base string
	hc   *http.Client
}

// call POSTs (or GETs, when in is nil) JSON and decodes the answer into out.
func (c *agentClient) call(ctx context.Context, path string, in, out any) error {
	method, body := http.MethodGet, io.Reader(nil)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		method, body = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("coordinator %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("coordinator %s%s: %s: %s", c.base, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// syncClock estimates this machine's clock minus the coordinator's from
// the exchange with the shortest round trip (NTP's idea).
func (c *agentClient) syncClock(ctx context.Context) (offset, rtt time.Duration, err error) {
	rtt = -1
	for range clockSamples {
		var tr timeReply
		t0 := time.Now()
		if err := c.call(ctx, pathTime, nil, &tr); err != nil {
			return 0, 0, err
		}
		d := time.Since(t0)
		if rtt < 0 || d < rtt {
			rtt = d
			offset = time.Duration(t0.Add(d/2).UnixNano() - tr.UnixNano)
		}
	}
	return offset, rtt, nil
}

// RunAgent joins the coordinator, checks it can reach the registries with
// its own credentials, and plays its slice of every step at the barrier
// the coordinator sets, until the coordinator says the run is over. It
// returns an error when the coordinator cannot be reached, calls the run
// off, or the registries fail the check here.
func RunAgent(ctx context.Context, o AgentOptions) error {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	notice := func(format string, args ...any) {
		if o.Notice != nil {
			o.Notice(fmt.Sprintf(format, args...))
		}
	}
	if err := o.Auth.validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(o.Coordinator, "http://") && !strings.HasPrefix(o.Coordinator, "https://") {
		return fmt.Errorf("%w: --coordinator %q: want http://host:port", ErrUsage, o.Coordinator)
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	if o.Index < 0 {
		if v, err := strconv.Atoi(os.Getenv("JOB_COMPLETION_INDEX")); err == nil {
			o.Index = v
		}
	}
	c := &agentClient{base: strings.TrimSuffix(o.Coordinator, "/"), hc: &http.Client{}}
	var jr joinReply
	deadline := time.Now().Add(joinPatience)
	for {
		err := c.call(ctx, pathJoin, joinRequest{Name: o.Name, Index: o.Index}, &jr)
		if err == nil {
			break
		}
		if k := errKind(err); k != kindRefused && k != kindDNS && k != kindTimeout || time.Now().After(deadline) {
			return err
		}
		if err := sleep.Until(ctx, time.Now().Add(time.Second)); err != nil {
			return err
		}
	}
	plan, agent := &jr.Plan, jr.Agent
	notice("joined %s as agent %d of %d: %d nodes per event, %s, %d steps", c.base, agent, jr.Agents, plan.Nodes, plan.Arrival, len(plan.Steps))
	fail := func(step int, err error) error {
		_ = c.call(context.WithoutCancel(ctx), pathReady, readyRequest{Agent: agent, Step: step, Error: oneLine(err)}, &readyReply{})
		return err
	}
	offset, rtt, err := c.syncClock(ctx)
	if err != nil {
		return err
	}
	arrival, err := ParseArrival(plan.Arrival)
	if err != nil {
		return fail(0, err)
	}
	plat, err := parsePlatform(plan.Platform)
	if err != nil {
		return fail(0, err)
	}
	cs := &clientSide{auth: o.Auth, keychain: o.Keychain, platform: plat}
	insts, err := cs.instances(plan.Targets)
	if err != nil {
		return fail(0, err)
	}
	set := pullSetOf(plan.Images)
	for _, inst := range insts {
		pctx, cancel := context.WithTimeout(ctx, preflightTimeout)
		err := ping(pctx, inst)
		if err == nil {
			_, err = checkImages(pctx, inst, set, false)
		}
		cancel()
		if err != nil {
			return fail(0, err)
		}
	}
	runTimeout := time.Duration(plan.RunTimeoutS * float64(time.Second))
	for _, st := range plan.Steps {
		var rr readyReply
		req := readyRequest{Agent: agent, Step: st.Step, ClockOffsetS: offset.Seconds(), ClockRTTS: rtt.Seconds()}
		if err := c.call(ctx, pathReady, req, &rr); err != nil {
			return err
		}
		if rr.Abort != "" {
			return fmt.Errorf("the coordinator called the run off: %s", rr.Abort)
		}
		if rr.Done {
			return nil
		}
		start := time.Unix(0, rr.StartUnixNano).Add(offset)
		if o.Progress != nil {
			o.Progress(st.Step, len(plan.Steps), fmt.Sprintf("%s %s run %d", plan.Arrival, insts[st.Target].name, st.Run))
		}
		rep, err := c.playStep(ctx, runTimeout, &event{inst: insts[st.Target], set: set, nodes: plan.Nodes, arrival: arrival,
			agent: agent, agents: jr.Agents, start: start}, st, o.NodeProgress)
		if err != nil {
			_ = c.call(context.WithoutCancel(ctx), pathResult, resultRequest{Agent: agent, Step: st.Step, Error: oneLine(err)}, nil)
			return err
		}
		rep.Part.Name, rep.Part.ClockOffsetS, rep.Part.ClockRTTS = o.Name, offset.Seconds(), rtt.Seconds()
		if err := c.call(ctx, pathResult, resultRequest{Agent: agent, Step: st.Step, Report: rep}, nil); err != nil {
			return err
		}
	}
	var rr readyReply
	if err := c.call(ctx, pathReady, readyRequest{Agent: agent, Step: len(plan.Steps)}, &rr); err != nil {
		return err
	}
	if rr.Abort != "" {
		return fmt.Errorf("the coordinator called the run off: %s", rr.Abort)
	}
	return nil
}

// playStep plays this machine's slice of one step, reporting progress to
// the coordinator and waiting for it at every rolling batch.
func (c *agentClient) playStep(ctx context.Context, timeout time.Duration, ev *event, st stepSpec, local func(done, running, failed, total int)) (agentReport, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Until(ev.start))
	defer cancel()
	total := len(ev.slice())
	var sending atomic.Bool
	ev.progress = func(done, running, failed int) {
		if local != nil {
			local(done, running, failed, total)
		}
		if !sending.CompareAndSwap(false, true) {
			return // the last one is still on its way
		}
		go func() {
			defer sending.Store(false)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_ = c.call(pctx, pathProgress, progressRequest{Agent: ev.agent, Step: st.Step, Done: done, Running: running, Failed: failed}, nil)
		}()
	}
	ev.batchDone = func(ctx context.Context, b int) error {
		var ar abortReply
		if err := c.call(ctx, pathBatch, batchRequest{Agent: ev.agent, Step: st.Step, Batch: b}, &ar); err != nil {
			return err
		}
		if ar.Abort != "" {
			return errors.New("the coordinator called the run off: " + ar.Abort)
		}
		return nil
	}
	outs, err := ev.run(ctx)
	if err != nil {
		return agentReport{}, err
	}
	rep := buildReport(outs, ev.agent, ev.start, len(ev.set))
	first := time.Time{}
	for _, o := range outs {
		if first.IsZero() || o.res.Start.Before(first) {
			first = o.res.Start
		}
	}
	if !first.IsZero() {
		rep.Part.StartLateS = first.Sub(ev.start).Seconds()
	}
	return rep, nil
}

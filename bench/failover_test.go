package bench

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// A cluster of three bare servers, the first of them down: node i talks
// to server i mod 3 first; the node of the dead one turns to the next
// after its first failed request (one retry) and completes, the others
// never move.
func TestBenchNodesMoveToTheNextReplica(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	rs := &replicaSet{killed: make([]bool, 3)}
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: bareHandler(m.Catalog())}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		rs.replicas = append(rs.replicas, &instance{name: "bare", url: "http://" + ln.Addr().String(), stop: srv.Close})
		rs.peers = append(rs.peers, ln.Addr().String())
	}
	rs.replicas[0].stop()
	inst := &instance{name: TargetCluster, url: rs.replicas[0].url, cluster: rs, stop: func() error { return nil }}
	env := testEnv(t, m, targetFunc(func(context.Context, startEnv) (*instance, error) { return inst, nil }), Options{})
	res, outs := env.pullOutcomes(t.Context(), 6, 1, Arrival{})
	if res.FailedPulls != 0 || res.Corrupt != 0 || len(outs) != 6 {
		t.Fatalf("%d failed (%s), %d corrupt, %d nodes", res.FailedPulls, res.FirstFailure, res.Corrupt, len(outs))
	}
	for _, o := range outs {
		want := int64(0)
		if o.index%3 == 0 {
			want = 1
		}
		if r := o.res; r.Moves != want || (want == 1) != (r.Retries >= 1) {
			t.Errorf("node %d: %d moves, %d retries; want %d moves", o.index, r.Moves, r.Retries, want)
		}
	}
	n := newNodeAt(env.inst, 3)
	defer n.close()
	n.pull(t.Context(), env.set.images[:1])
	if cur, at := n.endpoint(); n.result().Failed != nil || cur != rs.replicas[1] || at != 1 {
		t.Errorf("node 3: %v, now on %s (mirror %d), want %s (mirror 1)", n.result().Failed, cur.url, at, rs.replicas[1].url)
	}
	if len(env.inst.pids()) != 0 || env.inst.forNode(4) != rs.replicas[1] {
		t.Errorf("pids %v, node 4 on %s", env.inst.pids(), env.inst.forNode(4).url)
	}
}

// The stall clock: the wait for the first byte counts as a silence; after
// the kill, bytes already on their way do not end the wait for the next
// ones; a body begun after the kill is not one under way at the kill.
func TestBenchStallClock(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	w := &blobWatch{}
	under := &stallClock{watch: w, watched: true}
	under.request(ms(0))
	under.tick(ms(30), 100) // first byte after 30 ms
	under.tick(ms(40), 100)
	w.killed.Store(ms(45).UnixNano())
	under.tick(ms(46), 100)  // already on its way
	under.tick(ms(446), 100) // the fill taken over
	if under.max != 400*time.Millisecond || under.killStall != 400*time.Millisecond || under.killResume != 400*time.Millisecond || under.killGap != 400*time.Millisecond {
		t.Errorf("under way: max %v, after the kill %v, resume %v, watched %v; want 400ms each", under.max, under.killStall, under.killResume, under.killGap)
	}
	if w.seen.Load() != 400 {
		t.Errorf("watch saw %d bytes, want 400", w.seen.Load())
	}
	late := &stallClock{watch: w}
	late.request(ms(500))
	late.tick(ms(700), 10)
	if late.killStall != 200*time.Millisecond || late.killResume != 0 || late.killGap != 0 || w.seen.Load() != 400 {
		t.Errorf("begun after the kill: after the kill %v, resume %v, watched %v, seen %d", late.killStall, late.killResume, late.killGap, w.seen.Load())
	}
	plain := &stallClock{}
	plain.request(ms(0))
	plain.tick(ms(5), 1)
	plain.tick(ms(25), 1)
	if plain.max != 20*time.Millisecond || plain.killStall != 0 {
		t.Errorf("no watch: max %v, after a kill %v", plain.max, plain.killStall)
	}
}

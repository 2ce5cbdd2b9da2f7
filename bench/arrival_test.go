package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestParseArrival(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Arrival{
		"storm": {Kind: ArrivalStorm}, "": {Kind: ArrivalStorm}, "ramp:20/s": {Kind: ArrivalRamp, Rate: 20},
		"ramp:0.5/s": {Kind: ArrivalRamp, Rate: 0.5}, "rolling:10": {Kind: ArrivalRolling, Surge: 10},
	} {
		got, err := ParseArrival(in)
		if err != nil || got != want {
			t.Errorf("ParseArrival(%q) = %+v, %v", in, got, err)
		}
		if in != "" {
			if again, _ := ParseArrival(got.String()); again != got {
				t.Errorf("%q: String %q does not parse back", in, got.String())
			}
		}
	}
	for _, in := range []string{"storm:1", "ramp", "ramp:20", "ramp:0/s", "ramp:-1/s", "rolling", "rolling:0", "rolling:x", "wave"} {
		if _, err := ParseArrival(in); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseArrival(%q): %v", in, err)
		}
	}
	r := Arrival{Kind: ArrivalRolling, Surge: 4}
	if r.batches(10) != 3 || r.batch(3) != 0 || r.batch(4) != 1 || r.batch(9) != 2 || r.offset(9) != 0 {
		t.Errorf("rolling:4 of 10 nodes: %d batches", r.batches(10))
	}
	if p := (Arrival{Kind: ArrivalRamp, Rate: 4}); p.offset(6) != 1500*time.Millisecond || p.batches(10) != 1 {
		t.Errorf("ramp:4/s: node 6 at %v", p.offset(6))
	}
}

// Slices: node i on machine i % K, every node once.
func TestEventSlices(t *testing.T) {
	t.Parallel()
	seen := map[int]int{}
	for a := range 3 {
		for _, i := range (&event{nodes: 10, agent: a, agents: 3}).slice() {
			if i%3 != a {
				t.Errorf("node %d on agent %d", i, a)
			}
			seen[i]++
		}
	}
	if len(seen) != 10 {
		t.Fatalf("nodes covered: %v", seen)
	}
}

// Rolling: a batch starts when the last one is done (and asks the barrier
// between batches); ramp: node i starts no earlier than i/rate.
func TestEventArrivals(t *testing.T) {
	t.Parallel()
	env := testEnv(t, startMAR(t), bareTarget(), Options{})
	var barriers []int
	ev := &event{inst: env.inst, set: env.set.images, nodes: 7, arrival: Arrival{Kind: ArrivalRolling, Surge: 3}, start: time.Now(),
		batchDone: func(_ context.Context, b int) error { barriers = append(barriers, b); return nil }}
	outs, err := ev.run(t.Context())
	if err != nil || len(outs) != 7 {
		t.Fatalf("%d outcomes, %v", len(outs), err)
	}
	if len(barriers) != 2 || barriers[0] != 0 || barriers[1] != 1 {
		t.Fatalf("barriers %v, want after batches 0 and 1", barriers)
	}
	end := map[int]time.Time{}
	for _, o := range outs {
		if o.res.Failed != nil {
			t.Fatal(o.res.Failed)
		}
		b := o.index / 3
		if e := o.res.Start.Add(o.res.Duration); e.After(end[b]) {
			end[b] = e
		}
	}
	for _, o := range outs {
		if b := o.index / 3; b > 0 && o.res.Start.Before(end[b-1]) {
			t.Errorf("node %d (batch %d) started before batch %d was done", o.index, b, b-1)
		}
	}

	ev = &event{inst: env.inst, set: env.set.images, nodes: 4, arrival: Arrival{Kind: ArrivalRamp, Rate: 20}, start: time.Now()}
	outs, err = ev.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if late := o.res.Start.Sub(ev.start); late < ev.arrival.offset(o.index) {
			t.Errorf("ramp: node %d started %v after the start, before its %v", o.index, late, ev.arrival.offset(o.index))
		}
	}

	// A failing barrier stops the event after the batch it follows.
	ev = &event{inst: env.inst, set: env.set.images, nodes: 6, arrival: Arrival{Kind: ArrivalRolling, Surge: 2}, start: time.Now(),
		batchDone: func(context.Context, int) error { return errors.New("called off") }}
	outs, err = ev.run(t.Context())
	if err == nil || len(outs) != 2 {
		t.Fatalf("after a failed barrier: %d outcomes, %v", len(outs), err)
	}
}

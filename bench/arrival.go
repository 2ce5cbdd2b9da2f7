package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Arrival kinds (the command line's --arrival values).
const (
	ArrivalStorm   = "storm"   // every node at the same instant (a node pool scaling at once)
	ArrivalRamp    = "ramp"    // ramp:N/s, N nodes a second (nodes joining as they boot)
	ArrivalRolling = "rolling" // rolling:SURGE, batches of SURGE nodes, the next when the last is done (maxSurge)
)

// Arrival is how nodes arrive during a cluster event. The zero value is a
// storm.
type Arrival struct {
	Kind  string  // ArrivalStorm, ArrivalRamp or ArrivalRolling
	Rate  float64 // ramp: nodes per second
	Surge int     // rolling: nodes per batch
}

// ParseArrival reads "storm", "ramp:N/s" (N > 0, may be fractional) or
// "rolling:SURGE" (SURGE ≥ 1); errors wrap ErrUsage.
func ParseArrival(s string) (Arrival, error) {
	kind, arg, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	bad := func(why string) (Arrival, error) {
		return Arrival{}, fmt.Errorf("%w: --arrival %q: %s (want storm, ramp:N/s or rolling:SURGE)", ErrUsage, s, why)
	}
	switch kind {
	case "", ArrivalStorm:
		if hasArg {
			return bad("storm takes no argument")
		}
		return Arrival{Kind: ArrivalStorm}, nil
	case ArrivalRamp:
		n, ok := strings.CutSuffix(arg, "/s")
		r, err := strconv.ParseFloat(n, 64)
		if !ok || err != nil || r <= 0 || r > 1e6 {
			return bad("the rate must be a positive number of nodes per second, e.g. ramp:20/s")
		}
		return Arrival{Kind: ArrivalRamp, Rate: r}, nil
	case ArrivalRolling:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return bad("the surge must be a whole number of nodes ≥ 1, e.g. rolling:10")
		}
		return Arrival{Kind: ArrivalRolling, Surge: n}, nil
	}
	return bad("unknown kind")
}

// String is the flag form ("storm", "ramp:20/s", "rolling:10").
func (a Arrival) String() string {
	switch a.Kind {
	case ArrivalRamp:
		return fmt.Sprintf("ramp:%s/s", strconv.FormatFloat(a.Rate, 'g', -1, 64))
	case ArrivalRolling:
		return fmt.Sprintf("rolling:%d", a.Surge)
	}
	return ArrivalStorm
}

// IsStorm reports whether every node starts at once.
func (a Arrival) IsStorm() bool { return a.Kind == "" || a.Kind == ArrivalStorm }

// offset is when node i (of the whole event, 0-based) starts after the
// event's start, for storm and ramp (rolling nodes start when their batch
// does).
func (a Arrival) offset(i int) time.Duration {
	if a.Kind != ArrivalRamp {
		return 0
	}
	return time.Duration(float64(i) / a.Rate * float64(time.Second))
}

// batches is the number of batches of an event of n nodes (1 unless
// rolling).
func (a Arrival) batches(n int) int {
	if a.Kind != ArrivalRolling {
		return 1
	}
	return (n + a.Surge - 1) / a.Surge
}

// batch is the batch of node i.
func (a Arrival) batch(i int) int {
	if a.Kind != ArrivalRolling {
		return 0
	}
	return i / a.Surge
}

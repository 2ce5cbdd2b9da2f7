package cluster

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

const hrwKeys = 10000

// keys are digest-like keys.
func keys() []string {
	out := make([]string, hrwKeys)
	for i := range out {
		out[i] = fmt.Sprintf("sha256:%064x", i*7919)
	}
	return out
}

func peerNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:5000", i+1)
	}
	return out
}

func owners(ks, peers []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = Owner(k, peers)
	}
	return out
}

// within fails unless got is within 15% of want: the hash spreads keys
// evenly (for 10,000 keys one standard deviation is under 1% here).
func within(t *testing.T, what string, got int, want float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > 0.15*want {
		t.Errorf("%s: %d keys, want %.0f ±15%%", what, got, want)
	}
}

func TestOwnerSameViewAgrees(t *testing.T) {
	t.Parallel()
	peers := peerNames(5)
	ks := keys()
	want := owners(ks, peers)
	// Another replica lists the same peers in another order.
	rev := slices.Clone(peers)
	slices.Reverse(rev)
	rot := append(slices.Clone(peers[2:]), peers[:2]...)
	for _, view := range [][]string{rev, rot} {
		if got := owners(ks, view); !slices.Equal(got, want) {
			t.Fatalf("view %v disagrees with %v", view, peers)
		}
	}
	if Owner("k", nil) != "" {
		t.Fatal("an empty view has an owner")
	}
	if Owner("k", []string{"a:1"}) != "a:1" {
		t.Fatal("the only peer does not own every key")
	}
}

func TestOwnerSpreadsEvenly(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 5, 8} {
		peers := peerNames(n)
		count := map[string]int{}
		for _, o := range owners(keys(), peers) {
			count[o]++
		}
		for _, p := range peers {
			within(t, fmt.Sprintf("%d peers: %s owns", n, p), count[p], float64(hrwKeys)/float64(n))
		}
	}
}

// A join moves only the keys the newcomer wins (~1/(N+1)); a leave only
// the keys the leaver held (~1/N).
func TestOwnerJoinLeaveMovesOneNth(t *testing.T) {
	t.Parallel()
	ks := keys()
	for _, n := range []int{3, 5, 8} {
		peers := peerNames(n)
		before := owners(ks, peers)

		joiner := fmt.Sprintf("10.0.1.%d:5000", n)
		after := owners(ks, append(slices.Clone(peers), joiner))
		moved := 0
		for i := range ks {
			if after[i] != before[i] {
				moved++
				if after[i] != joiner {
					t.Fatalf("%d+1 peers: key %s moved from %s to %s, not to the joiner", n, ks[i], before[i], after[i])
				}
			}
		}
		within(t, fmt.Sprintf("%d peers, one joins: moved", n), moved, float64(hrwKeys)/float64(n+1))

		leaver := peers[n/2]
		rest := slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == leaver })
		after = owners(ks, rest)
		moved = 0
		for i := range ks {
			if after[i] != before[i] {
				moved++
				if before[i] != leaver {
					t.Fatalf("%d-1 peers: key %s moved from %s, which stayed", n, ks[i], before[i])
				}
			}
		}
		within(t, fmt.Sprintf("%d peers, one leaves: moved", n), moved, float64(hrwKeys)/float64(n))
	}
}

func BenchmarkOwner(b *testing.B) {
	peers := peerNames(5)
	for b.Loop() {
		Owner("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", peers)
	}
}

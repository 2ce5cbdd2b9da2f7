package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Every value falls in a bucket that holds it, no wider than 1/64 of its
// lower bound, and the buckets follow one another without gaps.
func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	prevHi := int64(-1)
	for i := 0; i < 3000; i++ {
		lo, hi := histBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d is [%d, %d] after one ending at %d", i, lo, hi, prevHi)
		}
		if lo >= 1<<histSubBits && float64(hi-lo+1)/float64(lo) > 1.0/64 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/64", i, lo, hi)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if histIndex(v) != i {
				t.Fatalf("value %d in bucket %d, index says %d", v, i, histIndex(v))
			}
		}
		prevHi = hi
	}
}

// Quantiles of the histogram are within 1% of the exact ones.
func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var xs []float64
	for range 5000 {
		d := time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(50*time.Millisecond))
		h.Record(d)
		xs = append(xs, d.Seconds())
	}
	slices.Sort(xs)
	for _, q := range []float64{0, 0.25, 0.5, 0.9, 0.99, 1} {
		exact := xs[max(0, int(math.Ceil(q*float64(len(xs))))-1)]
		got := h.Quantile(q).Seconds()
		if math.Abs(got-exact)/exact > 0.01 {
			t.Errorf("q%.2f: %v, exact %v", q, got, exact)
		}
	}
	if d := h.Dist(); d.N != 5000 || d.Min != xs[0] || d.Max != xs[len(xs)-1] {
		t.Errorf("dist %+v", d)
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Dist() != (Dist{}) {
		t.Error("an empty histogram has quantiles")
	}
}

// Merging the parts gives exactly the histogram of the whole, and the JSON
// form round-trips.
func TestHistogramMergeAndJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	var whole Histogram
	parts := make([]Histogram, 4)
	for i := range 2000 {
		d := time.Duration(r.Int64N(int64(3 * time.Second)))
		whole.Record(d)
		parts[i%4].Record(d)
	}
	var merged Histogram
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(nil)
	if !slices.Equal(merged.Buckets(), whole.Buckets()) || merged.Count() != whole.Count() || merged.Dist() != whole.Dist() {
		t.Fatal("merged parts differ from the whole")
	}
	b, err := json.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.Buckets(), whole.Buckets()) || back.Dist() != whole.Dist() {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{`{"count":2,"buckets":[[1,1]]}`, `{"count":1,"buckets":[[-1,1]]}`, `{"count":1,"buckets":[[1,-1]]}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

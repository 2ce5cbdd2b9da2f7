package bench

import (
	"math"
	"sort"
	"time"
)

// Percentile returns the p-th percentile (0..100) of xs by linear
// interpolation between closest ranks; 0 for an empty slice. xs is not
// modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return percentileSorted(s, p)
}

func percentileSorted(s []float64, p float64) float64 {
	switch {
	case len(s) == 0:
		return 0
	case p <= 0:
		return s[0]
	case p >= 100:
		return s[len(s)-1]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
}

// Median returns the median of xs (the mean of the two middle values for an
// even count); 0 for an empty slice.
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Dist summarises a sample of durations or sizes.
type Dist struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P25 float64 `json:"p25"`
	P50 float64 `json:"p50"`
	P75 float64 `json:"p75"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summarize returns the distribution of xs.
func Summarize(xs []float64) Dist {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	d := Dist{N: len(s)}
	if len(s) == 0 {
		return d
	}
	d.Min, d.Max = s[0], s[len(s)-1]
	d.P25 = percentileSorted(s, 25)
	d.P50 = percentileSorted(s, 50)
	d.P75 = percentileSorted(s, 75)
	d.P90 = percentileSorted(s, 90)
	d.P95 = percentileSorted(s, 95)
	d.P99 = percentileSorted(s, 99)
	return d
}

// seconds converts durations to float seconds.
func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// medianOf returns the median of f over the runs.
func medianOf[T any](runs []T, f func(T) float64) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return Median(xs)
}

package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// histSubBits sets the histogram's precision: values below 2^histSubBits
// nanoseconds have a bucket each, larger ones fall in buckets 1/64 of
// their power of two wide (a bucket's midpoint is within 0.8% of every
// value in it), HDR-histogram style.
const histSubBits = 7

// Histogram counts durations in fixed log-linear buckets. Two histograms
// merge exactly (their counts add), so the percentiles of many load
// machines are read from their merged histogram, never averaged. The zero
// value is empty and ready to use; it is not safe for concurrent use.
type Histogram struct {
	count, sum, min, max int64 // nanoseconds for sum, min, max
	counts               map[int]int64
}

// histIndex is the bucket of v nanoseconds.
func histIndex(v int64) int {
	if v < 1<<histSubBits {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits
	return e<<(histSubBits-1) + int(v>>e)
}

// histBounds returns the lowest and highest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < 1<<histSubBits {
		return int64(i), int64(i)
	}
	half := 1 << (histSubBits - 1)
	e := i/half - 1
	m := int64(i - e*half)
	return m << e, (m+1)<<e - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	if h.count == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.count++
	h.sum += v
	h.counts[histIndex(v)]++
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.sum += o.sum
	for i, n := range o.counts {
		h.counts[i] += n
	}
}

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 { return h.count }

// Bucket returns the count of the bucket holding d.
func (h *Histogram) Bucket(d time.Duration) int64 { return h.counts[histIndex(int64(d))] }

// Buckets returns the non-empty buckets as (index, count) pairs, by index.
func (h *Histogram) Buckets() [][2]int64 {
	out := make([][2]int64, 0, len(h.counts))
	for i, n := range h.counts {
		if n != 0 {
			out = append(out, [2]int64{int64(i), n})
		}
	}
	slices.SortFunc(out, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	return out
}

// Quantile returns the q-th quantile (0..1) by nearest rank: the midpoint
// of the bucket holding it, kept within the exact minimum and maximum;
// 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := max(int64(math.Ceil(q*float64(h.count))), 1)
	var seen int64
	for _, b := range h.Buckets() {
		if seen += b[1]; seen >= rank {
			lo, hi := histBounds(int(b[0]))
			return time.Duration(min(max(lo+(hi-lo)/2, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Dist summarises the histogram in seconds.
func (h *Histogram) Dist() Dist {
	if h.count == 0 {
		return Dist{}
	}
	s := func(q float64) float64 { return h.Quantile(q).Seconds() }
	return Dist{N: int(h.count), Min: s(0), P25: s(0.25), P50: s(0.5), P75: s(0.75), P95: s(0.95), P99: s(0.99), Max: s(1)}
}

// histJSON is a histogram in results.json: nanoseconds, and the non-empty
// buckets as [index, count] pairs (bucket i holds the values whose
// histIndex is i).
type histJSON struct {
	Count   int64      `json:"count"`
	SumNS   int64      `json:"sumNs"`
	MinNS   int64      `json:"minNs"`
	MaxNS   int64      `json:"maxNs"`
	Buckets [][2]int64 `json:"buckets"`
}

// MarshalJSON implements json.Marshaler.
func (h Histogram) MarshalJSON() ([]byte, error) {
	return json.Marshal(histJSON{Count: h.count, SumNS: h.sum, MinNS: h.min, MaxNS: h.max, Buckets: h.Buckets()})
}

// UnmarshalJSON implements json.Unmarshaler; the bucket counts must add up
// to the count.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Histogram{count: j.Count, sum: j.SumNS, min: j.MinNS, max: j.MaxNS, counts: map[int]int64{}}
	var n int64
	for _, bk := range j.Buckets {
		if bk[0] < 0 || bk[0] > 1<<16 || bk[1] < 0 {
			return fmt.Errorf("histogram: bad bucket %v", bk)
		}
		h.counts[int(bk[0])] += bk[1]
		n += bk[1]
	}
	if n != j.Count {
		return fmt.Errorf("histogram: buckets hold %d values, count says %d", n, j.Count)
	}
	return nil
}

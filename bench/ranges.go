package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// rangesScenario resolves the large image, then issues RangeCount concurrent
// Range GETs of RangeSize over its blob: cold (empty cache), then warm. On
// a cluster, range i goes to replica i mod N.
func rangesScenario(ctx context.Context, env *runEnv) ([]phaseResult, error) {
	b := env.set.large
	if b.Size == 0 {
		return nil, errors.New("ranges: the large blob was not generated")
	}
	want, err := rangeHashes(b, env.opts.RangeSize, env.opts.RangeCount)
	if err != nil {
		return nil, err
	}
	n := newNode(env.inst)
	defer n.close()
	if _, _, err := n.resolveImage(ctx, imageOf(largeRef)); err != nil {
		return nil, fmt.Errorf("ranges: %w", err)
	}
	scope := map[string]int64{b.Digest.String(): b.Size}
	cold := env.ranges(ctx, n, b, want, scope)
	// Make sure the whole blob is cached before the warm phase (a proxy may
	// not keep what it streamed for ranges).
	prs := []phaseResult{{"cold", cold}}
	if err := n.blob(ctx, n.client(largeRef.Repo), largeRef.Repo, v1.Descriptor{Digest: b.Digest, Size: b.Size}); err != nil {
		return prs, fmt.Errorf("ranges: full GET before the warm phase: %w", err)
	}
	for _, inst := range env.inst.members() {
		if err := waitRangeable(ctx, n.client(largeRef.Repo), inst.url+"/v2/"+inst.prefix+largeRef.Repo+"/blobs/"+b.Digest.String()); err != nil {
			return prs, fmt.Errorf("ranges: before the warm phase: %s: %w", inst.name, err)
		}
	}
	return append(prs, phaseResult{"warm", env.ranges(ctx, n, b, want, scope)}), nil
}

// waitRangeable waits until a one-byte Range GET of url answers 206: a
// proxy may commit a blob to its store only after the client got the last
// byte, and answer 200 from upstream until then. A 200 is read to the end
// (a proxy may only keep what a client read whole).
func waitRangeable(ctx context.Context, c *http.Client, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Range", "bytes=0-0")
		resp, err := c.Do(req)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusPartialContent {
				return nil
			}
			err = fmt.Errorf("Range GET: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("Range still not honoured after 60s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rangeHashes returns the sha256 of each range of the blob file.
func rangeHashes(b catalog.Blob, size int64, count int) ([][]byte, error) {
	f, err := b.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	for i := range count {
		h := sha256.New()
		if _, err := f.Seek(int64(i)*size, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(h, f, size); err != nil {
			return nil, fmt.Errorf("ranges: read blob: %w", err)
		}
		out = append(out, h.Sum(nil))
	}
	return out, nil
}

// ranges runs the concurrent Range GETs once and measures them.
func (env *runEnv) ranges(ctx context.Context, n *node, b catalog.Blob, want [][]byte, scope map[string]int64) RunResult {
	size := env.opts.RangeSize
	settledStats(ctx, env.mar) // let earlier requests (priming, a previous phase) finish counting
	env.mar.ResetStats()
	meter := startMeter(env.inst.pids()...)
	path := "/v2/" + env.inst.prefix + largeRef.Repo + "/blobs/" + b.Digest.String()
	type out struct {
		dur, ttfb time.Duration
		bytes     int64
		skipped   int64 // bytes before the range in a 200 answer
		ignored   bool  // the target answered 200 to the Range GET
		err       error
		corrupt   bool
	}
	outs := make([]out, len(want))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			o := &outs[i]
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.inst.forNode(i).url+path, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", int64(i)*size, int64(i+1)*size-1))
			resp, err := n.client(largeRef.Repo).Do(req)
			if err != nil {
				o.err = err
				return
			}
			defer resp.Body.Close()
			fr := &firstByteReader{r: resp.Body}
			switch resp.StatusCode {
			case http.StatusPartialContent:
			case http.StatusOK:
				// Range ignored: like containerd, skip to the range's start.
				o.ignored = true
				k, err := io.CopyN(io.Discard, fr, int64(i)*size)
				if o.skipped = k; err != nil {
					o.err = fmt.Errorf("range %d: 200 (Range ignored), body broke: %w", i, err)
					return
				}
			default:
				o.err = fmt.Errorf("range %d: %s", i, resp.Status)
				return
			}
			limit := size + 1 // a 206 must end after the range
			if o.ignored {
				limit = size // a whole-blob answer goes on: stop at the range's end
			}
			h := sha256.New()
			o.bytes, o.err = io.Copy(h, io.LimitReader(fr, limit))
			o.dur, o.ttfb = time.Since(t0), fr.at.Sub(t0)
			switch {
			case o.err != nil:
			case o.bytes != size:
				o.err = fmt.Errorf("range %d: %d bytes, want %d", i, o.bytes, size)
			case !slices.Equal(h.Sum(nil), want[i]):
				o.corrupt, o.err = true, fmt.Errorf("range %d: %w", i, errCorrupt)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := RunResult{WallS: time.Since(t0).Seconds(), Clients: len(want)}
	var ttfb []float64
	for _, o := range outs {
		res.Requests++
		res.Bytes += o.bytes + o.skipped
		if o.ignored {
			res.RangeIgnored++
		}
		if o.err != nil {
			res.Errors++
			res.FailedPulls++
			if res.FirstFailure == "" {
				res.FirstFailure = o.err.Error()
			}
			if o.corrupt {
				res.Corrupt++
			}
			continue
		}
		res.PullS = append(res.PullS, o.dur.Seconds())
		ttfb = append(ttfb, o.ttfb.Seconds())
	}
	res.Pull, res.TTFB = Summarize(res.PullS), Summarize(ttfb)
	if res.WallS > 0 {
		res.MBps = float64(res.Bytes) / res.WallS / 1e6
	}
	res.Proc = meter.stop(res.Bytes)
	res.Upstream = upstreamStats(settledStats(ctx, env.mar), scope)
	return res
}

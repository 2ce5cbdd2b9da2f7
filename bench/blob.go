package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blob GETs one blob (following the 307 to the data endpoint when talking
// to the emulator), hashes it and records the time to its first byte. Like
// containerd, a broken body is resumed once with Range from where it broke
// (on the node's next mirror).
func (n *node) blob(ctx context.Context, c *http.Client, repo string, d v1.Descriptor) error {
	h := sha256.New()
	var got int64
	clock := &stallClock{watch: n.watch, watched: n.watch != nil && n.watch.digest == d.Digest}
	defer n.note(func(r *nodeResult) {
		r.MaxStall = max(r.MaxStall, clock.max)
		r.KillStall = max(r.KillStall, clock.killStall)
		r.KillResume = max(r.KillResume, clock.killResume)
		r.KillGap = max(r.KillGap, clock.killGap)
	})
	err := n.retry(ctx, func(inst *instance) error {
		url := inst.url + "/v2/" + inst.prefix + repo + "/blobs/" + d.Digest.String()
		done, err := n.blobPart(ctx, c, url, d, h, &got, clock)
		if done && err != nil {
			return final{err} // the whole length arrived: not worth another GET
		}
		return err
	})
	if err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != d.Digest.Hex {
		n.note(func(r *nodeResult) { r.Corrupt++ })
		n.noteKind(kindCorrupt)
		return fmt.Errorf("blob %s: %w", d.Digest, errCorrupt)
	}
	return nil
}

// blobPart GETs the blob from *got on, adding what arrives to h and *got;
// done reports that the whole size arrived.
func (n *node) blobPart(ctx context.Context, c *http.Client, url string, d v1.Descriptor, h io.Writer, got *int64, clock *stallClock) (done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	want := http.StatusOK
	if *got > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", *got))
		want = http.StatusPartialContent
	}
	start := time.Now()
	clock.request(start)
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	fr := &firstByteReader{r: resp.Body, clock: clock}
	switch {
	case resp.StatusCode == want:
	case want == http.StatusPartialContent && resp.StatusCode == http.StatusOK:
		// Range ignored: like containerd, skip what we already have.
		fr.clock = nil // bytes the node has already: not progress
		k, err := io.CopyN(io.Discard, fr, *got)
		fr.clock = clock
		if err != nil {
			n.note(func(r *nodeResult) { r.Bytes += k; r.Errors++ })
			n.noteKind(kindBroken)
			return false, fmt.Errorf("blob %s: resume answered 200, broke after %d bytes: %w: %w", d.Digest, k, errBroken, err)
		}
		n.note(func(r *nodeResult) { r.Bytes += *got })
	default:
		return false, fmt.Errorf("blob %s: %w (want %d)", d.Digest, &statusError{status: resp.Status, code: resp.StatusCode}, want)
	}
	k, err := io.Copy(h, io.LimitReader(fr, d.Size-*got+1))
	*got += k
	n.note(func(r *nodeResult) {
		r.Bytes += k
		if !fr.at.IsZero() && want == http.StatusOK {
			r.TTFB = append(r.TTFB, fr.at.Sub(start))
		}
	})
	switch {
	case err != nil:
		n.note(func(r *nodeResult) { r.Errors++ })
		n.noteKind(kindBroken)
		return false, fmt.Errorf("blob %s: broken after %d of %d bytes: %w: %w", d.Digest, *got, d.Size, errBroken, err)
	case *got != d.Size:
		n.note(func(r *nodeResult) { r.Errors++ })
		n.noteKind(kindBroken)
		return true, fmt.Errorf("blob %s: %d bytes, want %d: %w", d.Digest, *got, d.Size, errBroken)
	}
	return true, nil
}

// firstByteReader records when the first byte arrived, and feeds the
// blob's stall clock.
type firstByteReader struct {
	r     io.Reader
	at    time.Time
	clock *stallClock // nil: none
}

func (f *firstByteReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		now := time.Now()
		if f.at.IsZero() {
			f.at = now
		}
		if f.clock != nil {
			f.clock.tick(now, int64(n))
		}
	}
	return n, err
}

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blob GETs one blob (following the 307 to the data endpoint when talking
// to the emulator), hashes it and records the time to its first byte. Like
// containerd, a broken body is resumed once with Range from where it broke.
func (n *node) blob(ctx context.Context, c *http.Client, repo string, d v1.Descriptor) error {
	url := n.inst.url + "/v2/" + n.inst.prefix + repo + "/blobs/" + d.Digest.String()
	h := sha256.New()
	var got int64
	var err error
	for i := range attempts {
		if i > 0 {
			n.note(func(r *nodeResult) { r.Retries++ })
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryPause):
			}
		}
		var done bool
		if done, err = n.blobPart(ctx, c, url, d, h, &got); done || ctx.Err() != nil {
			break
		}
		var se *statusError
		if errors.As(err, &se) && !retryable(&transport.Error{StatusCode: se.code}) {
			break
		}
	}
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
func (n *node) blobPart(ctx context.Context, c *http.Client, url string, d v1.Descriptor, h io.Writer, got *int64) (done bool, err error) {
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
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	fr := &firstByteReader{r: resp.Body}
	switch {
	case resp.StatusCode == want:
	case want == http.StatusPartialContent && resp.StatusCode == http.StatusOK:
		// Range ignored: like containerd, skip what we already have.
		if k, err := io.CopyN(io.Discard, fr, *got); err != nil {
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

// firstByteReader records when the first byte arrived.
type firstByteReader struct {
	r  io.Reader
	at time.Time
}

func (f *firstByteReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
	}
	return n, err
}

package imagetool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/internal/progress"
	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BootstrapLister gives the bootstrap image list of a cluster: the images
// its nodes pull for its Kubernetes version (controlcli.Bootstrap asks the
// control module of the server warm pulls through).
type BootstrapLister interface {
	BootstrapImages(ctx context.Context, cluster string) ([]string, error)
}

// RunWarm is airlock warm: it pulls the list (or the cluster's bootstrap
// images) through the server of so, prints progress on stderr and the
// summary on stdout, and pins the images as pin when it is set. lister
// makes the BootstrapLister for the server warm pulls through. When images
// fail it returns an error saying how many.
func RunWarm(ctx context.Context, so *SourceOptions, list, cluster, pin string, lister func(server string, hc *http.Client) BootstrapLister, stdin io.Reader, stdout, stderr io.Writer) error {
	if so.Direct {
		return usageErrorf("warm pulls through a running airlock: --direct is for bundle export")
	}
	var refs []string
	var err error
	if list != "" {
		if refs, err = readList(list, stdin); err != nil {
			return &UsageError{err.Error()}
		}
	}
	src, err := so.start(ctx)
	if err != nil {
		return err
	}
	if list == "" {
		if refs, err = lister(src.server.String(), src.hc).BootstrapImages(ctx, cluster); err != nil {
			if errors.Is(err, adminapi.ErrUnreachable) {
				return err
			}
			return &UsageError{err.Error()}
		}
	}
	p := progress.NewImages(stderr, "warm", len(refs))
	res := warm(ctx, src, refs, so.Concurrency, p)
	p.Close()
	fmt.Fprintln(stdout, res)
	if res.failed > 0 {
		return fmt.Errorf("%d of %d images failed (FAIL lines above)", res.failed, res.images)
	}
	if pin != "" {
		if err := src.pin(ctx, refs, pin); err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		fmt.Fprintf(stdout, "pinned %d images as %s\n", len(refs), pin)
	}
	return nil
}

// warmResult sums up a warm run.
type warmResult struct {
	images, failed int
	blobs          int   // distinct (repository, blob) fetched
	bytes          int64 // received: manifests and blobs
	took           time.Duration
	// Of the blobs fetched whole: those airlock had cached already, and
	// those it fetched from the upstream for this run.
	cached, fetched           int
	cachedBytes, fetchedBytes int64
	manifestsFetched          int // manifests airlock fetched from the upstream
}

// String is the summary line: what was warmed, and how much of it was
// already cached and how much came from the upstream.
func (r warmResult) String() string {
	rate := int64(float64(r.bytes) / max(r.took.Seconds(), 0.001))
	s := fmt.Sprintf("warmed %d/%d images: %d blobs, %s in %s (%s/s); already cached: %d blobs (%s); fetched from upstream: %d blobs (%s), %d manifests",
		r.images-r.failed, r.images, r.blobs, progress.Human(r.bytes), r.took.Round(time.Millisecond), progress.Human(rate),
		r.cached, progress.Human(r.cachedBytes), r.fetched, progress.Human(r.fetchedBytes), r.manifestsFetched)
	if r.failed > 0 {
		s += fmt.Sprintf("; %d failed", r.failed)
	}
	return s
}

// resolved is one list entry after its manifests were fetched.
type resolved struct {
	line string
	ref  name.Reference
	img  *images.Image
	err  error
	left atomic.Int64 // blobs not fetched yet
	mu   sync.Mutex
	berr error // first blob failure
}

// resolveAll fetches every reference's manifests, n at a time; their
// bytes count as received.
func resolveAll(ctx context.Context, src *source, refs []string, n int, p *progress.Images) []*resolved {
	out := make([]*resolved, len(refs))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, line := range refs {
		out[i] = &resolved{line: line}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *resolved) {
			defer wg.Done()
			defer func() { <-sem }()
			_, ref, err := src.reference(r.line)
			if err == nil {
				r.ref = ref
				r.img, err = src.res.Resolve(ctx, ref)
			}
			if err != nil {
				r.err = err
				return
			}
			for _, m := range r.img.Manifests {
				p.Write(m.Raw)
			}
			p.Expect(r.img.Size())
		}(out[i])
	}
	wg.Wait()
	return out
}

// warm pulls every image of refs through src: manifests first, then each
// (repository, blob) once, n blobs at a time.
func warm(ctx context.Context, src *source, refs []string, n int, p *progress.Images) warmResult {
	start := time.Now()
	all := resolveAll(ctx, src, refs, n, p)
	type job struct {
		repo name.Repository
		desc v1.Descriptor
		imgs []*resolved
	}
	var jobs []*job
	byKey := map[string]*job{}
	for _, r := range all {
		if r.err != nil {
			p.Finished(r.line, r.err, "")
			continue
		}
		if len(r.img.Blobs) == 0 {
			p.Finished(r.line, nil, r.img.Root.Digest.String())
		}
		for _, b := range r.img.Blobs {
			k := r.ref.Context().String() + "@" + b.Digest.String()
			j := byKey[k]
			if j == nil {
				j = &job{repo: r.ref.Context(), desc: b}
				byKey[k] = j
				jobs = append(jobs, j)
			}
			j.imgs = append(j.imgs, r)
			r.left.Add(1)
		}
	}
	res := warmResult{images: len(refs), blobs: len(jobs)}
	var mu sync.Mutex // guards res's blob counts
	work := make(chan *job)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				_, err := images.Fetch(ctx, src.puller, j.repo, j.desc, p)
				if err == nil {
					mu.Lock()
					if src.origins.blobFromUpstream(j.repo.RepositoryStr(), j.desc.Digest.String()) {
						res.fetched++
						res.fetchedBytes += j.desc.Size
					} else {
						res.cached++
						res.cachedBytes += j.desc.Size
					}
					mu.Unlock()
				}
				for _, r := range j.imgs {
					if err != nil {
						r.mu.Lock()
						if r.berr == nil {
							r.berr = err
						}
						r.mu.Unlock()
					}
					if r.left.Add(-1) == 0 {
						r.mu.Lock()
						berr := r.berr
						r.mu.Unlock()
						p.Finished(r.line, berr, fmt.Sprintf("%s %d blobs %s", r.img.Root.Digest, len(r.img.Blobs), progress.Human(r.img.Size())))
					}
				}
			}
		}()
	}
	for _, j := range jobs {
		select {
		case work <- j:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	res.bytes, res.took = p.Bytes(), time.Since(start)
	res.manifestsFetched = src.origins.manifestsFromUpstream()
	for _, r := range all {
		if r.err != nil || r.berr != nil || r.left.Load() != 0 {
			res.failed++
		}
	}
	return res
}

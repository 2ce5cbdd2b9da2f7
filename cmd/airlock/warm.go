package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BootstrapLister gives the bootstrap image list of a cluster: the images
// its nodes pull for its Kubernetes version (controlBootstrap asks the
// control module of the server warm pulls through).
type BootstrapLister interface {
	BootstrapImages(ctx context.Context, cluster string) ([]string, error)
}

// warmCommand is `airlock warm`: pull an image list through a running
// airlock so that it is cached before anyone asks. lister (nil: --cluster
// is refused) is made for the server warm pulls through.
func warmCommand(lister func(server string, hc *http.Client) BootstrapLister) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("warm", flag.ContinueOnError)
		fs.SetOutput(stderr)
		list := fs.String("list", "", "image list file, one reference per line (- for standard input)")
		cluster := fs.String("cluster", "", "warm the bootstrap images of this cluster's Kubernetes version (from the server's control module)")
		pin := fs.String("pin", "", "after warming, pin the images (as OWNER, replacing OWNER's earlier pins) so eviction keeps them")
		var sf sourceFlags
		sf.register(fs, false)
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if (*list == "") == (*cluster == "") || fs.NArg() > 0 {
			fmt.Fprintln(stderr, "airlock warm: usage: airlock warm (--list FILE | --cluster NAME) (--config FILE | --server URL) [--platform os/arch,...] [--concurrency N]")
			return 2
		}
		src, err := sf.open()
		if err != nil {
			fmt.Fprintf(stderr, "airlock warm: %v\n", err)
			return 2
		}
		var refs []string
		switch {
		case *list != "":
			refs, err = readList(*list)
		case lister == nil:
			err = errors.New("--cluster needs the control module, which this build does not include; use --list")
		default:
			refs, err = lister(src.server.String(), src.hc).BootstrapImages(ctx, *cluster)
		}
		if err != nil {
			fmt.Fprintf(stderr, "airlock warm: %v\n", err)
			return 2
		}
		p := newProgress(stderr, "warm", len(refs))
		res := warm(ctx, src, refs, sf.concurrency, p)
		p.close()
		fmt.Fprintf(stdout, "warmed %d/%d images: %d blobs, %s in %s (%s/s)",
			res.images-res.failed, res.images, res.blobs, human(res.bytes), res.took.Round(time.Millisecond), human(res.rate()))
		if res.failed > 0 {
			fmt.Fprintf(stdout, "; %d failed\n", res.failed)
			return 1
		}
		fmt.Fprintln(stdout)
		if *pin != "" {
			if err := src.pin(ctx, refs, *pin); err != nil {
				fmt.Fprintf(stderr, "airlock warm: pin: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "pinned %d images as %s\n", len(refs), *pin)
		}
		return 0
	}
}

// warmResult sums up a warm run.
type warmResult struct {
	images, failed, blobs int
	bytes                 int64
	took                  time.Duration
}

func (r warmResult) rate() int64 {
	return int64(float64(r.bytes) / max(r.took.Seconds(), 0.001))
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
func resolveAll(ctx context.Context, src *source, refs []string, n int, p *progress) []*resolved {
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
			p.expect(r.img.Size())
		}(out[i])
	}
	wg.Wait()
	return out
}

// warm pulls every image of refs through src: manifests first, then each
// (repository, blob) once, n blobs at a time.
func warm(ctx context.Context, src *source, refs []string, n int, p *progress) warmResult {
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
			p.finished(r.line, r.err, "")
			continue
		}
		if len(r.img.Blobs) == 0 {
			p.finished(r.line, nil, r.img.Root.Digest.String())
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
	work := make(chan *job)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				_, err := images.Fetch(ctx, src.puller, j.repo, j.desc, p)
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
						p.finished(r.line, berr, fmt.Sprintf("%s %d blobs %s", r.img.Root.Digest, len(r.img.Blobs), human(r.img.Size())))
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
	res := warmResult{images: len(refs), blobs: len(jobs), bytes: p.bytes.Load(), took: time.Since(start)}
	for _, r := range all {
		if r.err != nil || r.berr != nil || r.left.Load() != 0 {
			res.failed++
		}
	}
	return res
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/controlcli"
	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
)

// BootstrapLister gives the bootstrap image list of a cluster: the images
// its nodes pull for its Kubernetes version (controlBootstrap asks the
// control module of the server warm pulls through).
type BootstrapLister interface {
	BootstrapImages(ctx context.Context, cluster string) ([]string, error)
}

// warmCmd is `airlock warm`: pull an image list through a running airlock
// so that it is cached before anyone asks.
func warmCmd() *cobra.Command {
	var list, cluster, pin string
	var sf sourceFlags
	cmd := &cobra.Command{
		Use:   "warm (--list FILE | --cluster NAME) (--config FILE | --server URL)",
		Short: "Pull an image list through a running airlock",
		Long: `Pull every image of a list (or the bootstrap images of a cluster) through a
running airlock, so that it is cached before anyone asks: manifests first, then
each blob once. References name the upstream (mcr.microsoft.com/...); the cache
rules of --config map them to the local repositories that fetch them.

An image list has one reference per line, # comments allowed. The summary says
how much was already cached and how much airlock fetched from the upstream.`,
		Example: `  airlock warm --config airlock.yaml --list images.txt --platform linux/amd64 --concurrency 8
  # the bootstrap images of a cluster's Kubernetes version, pinned under its name
  airlock warm --server http://127.0.0.1:5000 --cluster aks1 --pin cluster/aks1
  # a list on standard input
  echo mcr.microsoft.com/oss/kubernetes/pause:3.10 | airlock warm --server http://127.0.0.1:5000 --list -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (list == "") == (cluster == "") {
				return usagef("give exactly one of --list FILE and --cluster NAME (see 'airlock warm --help')")
			}
			return runWarm(cmd.Context(), &sf, list, cluster, pin, clusterImages, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&list, "list", "", "image list `FILE`, one reference per line (- for standard input)")
	fs.StringVar(&cluster, "cluster", "", "warm the bootstrap images of this cluster's Kubernetes version (from the server's control module)")
	fs.StringVar(&pin, "pin", "", "after warming, pin the images as `OWNER` (replacing OWNER's earlier pins) so eviction keeps them")
	sf.register(fs, false)
	return cmd
}

// clusterImages lists a cluster's bootstrap images through the control
// module of the server warm pulls through.
func clusterImages(base string, hc *http.Client) BootstrapLister {
	return controlcli.Bootstrap{Client: adminapi.NewClient(base, hc), Images: server.BootstrapImages}
}

// runWarm warms the list (or the cluster's bootstrap images) and prints
// the summary. lister makes the BootstrapLister for the server warm pulls
// through.
func runWarm(ctx context.Context, sf *sourceFlags, list, cluster, pin string, lister func(server string, hc *http.Client) BootstrapLister, stdin io.Reader, stdout, stderr io.Writer) error {
	src, err := sf.open()
	if err != nil {
		return err
	}
	var refs []string
	if list != "" {
		if refs, err = readList(list, stdin); err != nil {
			return &usageError{err.Error()}
		}
	} else if refs, err = lister(src.server.String(), src.hc).BootstrapImages(ctx, cluster); err != nil {
		if errors.Is(err, adminapi.ErrUnreachable) {
			return err
		}
		return &usageError{err.Error()}
	}
	p := newProgress(stderr, "warm", len(refs))
	res := warm(ctx, src, refs, sf.concurrency, p)
	p.close()
	fmt.Fprintf(stdout, "warmed %d/%d images: %d blobs, %s in %s (%s/s)",
		res.images-res.failed, res.images, res.blobs, human(res.bytes), res.took.Round(time.Millisecond), human(res.rate()))
	if res.failed > 0 {
		fmt.Fprintf(stdout, "; %d failed\n", res.failed)
		return exitCode(1)
	}
	fmt.Fprintln(stdout)
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

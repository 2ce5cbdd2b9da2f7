// Package imagetool is airlock's image tools, behind the warm and bundle
// commands: image lists pulled through a running airlock (its cache rules
// map each upstream reference to the local repository that fetches it) or
// straight from the registries, pre-warming with pins, and air-gap bundles
// exported from and imported into airlock's storage.
package imagetool

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/reference"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"
)

// UsageError is bad command-line input.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// SourceOptions say where warm and bundle export pull images from.
type SourceOptions struct {
	Config, Server, Platform string
	Concurrency              int
	Insecure, Direct         bool
}

// Register registers the options' flags; direct adds --direct.
func (f *SourceOptions) Register(fs *pflag.FlagSet, direct bool) {
	fs.StringVar(&f.Config, "config", "", "airlock configuration: its cache rules map references, its listen address is the server")
	fs.StringVar(&f.Server, "server", "", "URL of the running airlock to pull through (default: http://<listen> of --config)")
	fs.StringVar(&f.Platform, "platform", "", "platforms to take from multi-platform images, e.g. linux/amd64,linux/arm64 (default all)")
	fs.IntVar(&f.Concurrency, "concurrency", 4, "blobs fetched at once")
	fs.BoolVar(&f.Insecure, "insecure", false, "do not verify TLS certificates")
	if direct {
		fs.BoolVar(&f.Direct, "direct", false, "pull each reference from its own registry (or the endpoint --config's upstreams give it) instead of through airlock")
	}
}

// source pulls images: through a running airlock, with list references
// mapped through its cache rules to local repositories, or directly from
// each reference's registry.
type source struct {
	server *url.URL // nil: direct
	rules  *rules.Set
	puller *remote.Puller
	http   bool
	res    *images.Resolver
	hc     *http.Client // for airlock's own APIs
}

func (f *SourceOptions) open() (*source, error) {
	if f.Concurrency < 1 || f.Concurrency > 64 {
		return nil, usageErrorf("--concurrency %d: must be between 1 and 64", f.Concurrency)
	}
	plats, err := images.ParsePlatforms(f.Platform)
	if err != nil {
		return nil, usageErrorf("--platform: %v", err)
	}
	s := &source{}
	if f.Config != "" {
		cfg, err := config.Load(f.Config)
		if err != nil {
			return nil, err
		}
		if s.rules, err = cfg.RuleSet(); err != nil {
			return nil, err
		}
		if f.Server == "" && !f.Direct {
			host, port, _ := net.SplitHostPort(cfg.Listen)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			scheme := "http"
			if cfg.TLS.Enabled() {
				scheme = "https" // with tls.auto, trust its CA or pass --insecure
			}
			f.Server = scheme + "://" + net.JoinHostPort(host, port)
		}
	}
	switch {
	case f.Direct && f.Server != "":
		return nil, usageErrorf("--direct and --server exclude each other")
	case f.Direct:
		s.http = f.Insecure
	case f.Server == "":
		return nil, usageErrorf("say where to pull through: --config FILE or --server URL (or --direct for bundle export)")
	default:
		u, err := url.Parse(f.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageErrorf("--server %q must be http(s)://host[:port]", f.Server)
		}
		s.server, s.http = u, u.Scheme == "http"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = f.Concurrency + 2
	tr.ResponseHeaderTimeout = 2 * time.Minute
	if f.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	s.puller, err = remote.NewPuller(remote.WithTransport(tr), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("airlock"), remote.WithJobs(f.Concurrency))
	if err != nil {
		return nil, err
	}
	s.res = &images.Resolver{Puller: s.puller, Platforms: plats}
	s.hc = &http.Client{Transport: tr, Timeout: time.Minute}
	return s, nil
}

// pin replaces owner's pins on the server with the local references of
// refs (pins API, /admin/pins).
func (s *source) pin(ctx context.Context, refs []string, owner string) error {
	if s.server == nil {
		return errors.New("pins need a server")
	}
	var local []string
	for _, line := range refs {
		r, err := reference.Parse(line)
		if err != nil {
			return err
		}
		repo, err := localRepo(r, s.rules, s.server.Host)
		if err != nil {
			return err
		}
		local = append(local, r.In(repo))
	}
	for _, c := range []struct {
		method string
		body   any
		want   int
	}{
		{http.MethodDelete, map[string]any{"owner": owner}, http.StatusOK},
		{http.MethodPost, map[string]any{"refs": local, "owner": owner}, http.StatusNoContent},
	} {
		b, _ := json.Marshal(c.body)
		req, err := http.NewRequestWithContext(ctx, c.method, s.server.JoinPath("/admin/pins").String(), bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.hc.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != c.want {
			return fmt.Errorf("%s /admin/pins: %s %s", c.method, resp.Status, bytes.TrimSpace(msg))
		}
	}
	return nil
}

// reference maps a list line to what to pull.
func (s *source) reference(line string) (reference.Ref, name.Reference, error) {
	r, err := reference.Parse(line)
	if err != nil {
		return r, nil, err
	}
	var opts []name.Option
	if s.http {
		opts = append(opts, name.Insecure)
	}
	target := r.String()
	if s.server != nil {
		local, err := localRepo(r, s.rules, s.server.Host)
		if err != nil {
			return r, nil, err
		}
		target = s.server.Host + "/" + r.In(local)
	}
	ref, err := name.ParseReference(target, opts...)
	if err != nil {
		return r, nil, fmt.Errorf("%s: %w", line, err)
	}
	return r, ref, nil
}

// readList reads an image list file ("-": stdin).
func readList(path string, stdin io.Reader) ([]string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	refs, err := images.ParseList(r)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("%s lists no images", path)
	}
	return refs, nil
}

// platformNote names the platforms asked for, for bundle annotations.
func (f *SourceOptions) platformNote() string { return strings.ReplaceAll(f.Platform, " ", "") }

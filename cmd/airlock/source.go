package main

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
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"
)

// sourceFlags say where warm and bundle export pull images from.
type sourceFlags struct {
	config, server, platform string
	concurrency              int
	insecure, direct         bool
}

func (f *sourceFlags) register(fs *pflag.FlagSet, direct bool) {
	fs.StringVar(&f.config, "config", "", "airlock configuration: its cache rules map references, its listen address is the server")
	fs.StringVar(&f.server, "server", "", "URL of the running airlock to pull through (default: http://<listen> of --config)")
	fs.StringVar(&f.platform, "platform", "", "platforms to take from multi-platform images, e.g. linux/amd64,linux/arm64 (default all)")
	fs.IntVar(&f.concurrency, "concurrency", 4, "blobs fetched at once")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify TLS certificates")
	if direct {
		fs.BoolVar(&f.direct, "direct", false, "pull each reference from its own registry (or the endpoint --config's upstreams give it) instead of through airlock")
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

func (f *sourceFlags) open() (*source, error) {
	if f.concurrency < 1 || f.concurrency > 64 {
		return nil, usagef("--concurrency %d: must be between 1 and 64", f.concurrency)
	}
	plats, err := images.ParsePlatforms(f.platform)
	if err != nil {
		return nil, usagef("--platform: %v", err)
	}
	s := &source{}
	if f.config != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		if s.rules, err = cfg.RuleSet(); err != nil {
			return nil, err
		}
		if f.server == "" && !f.direct {
			host, port, _ := net.SplitHostPort(cfg.Listen)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			scheme := "http"
			if cfg.TLS.Enabled() {
				scheme = "https" // with tls.auto, trust its CA or pass --insecure
			}
			f.server = scheme + "://" + net.JoinHostPort(host, port)
		}
	}
	switch {
	case f.direct && f.server != "":
		return nil, usagef("--direct and --server exclude each other")
	case f.direct:
		s.http = f.insecure
	case f.server == "":
		return nil, usagef("say where to pull through: --config FILE or --server URL (or --direct for bundle export)")
	default:
		u, err := url.Parse(f.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--server %q must be http(s)://host[:port]", f.server)
		}
		s.server, s.http = u, u.Scheme == "http"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = f.concurrency + 2
	tr.ResponseHeaderTimeout = 2 * time.Minute
	if f.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	s.puller, err = remote.NewPuller(remote.WithTransport(tr), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("airlock"), remote.WithJobs(f.concurrency))
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
		r, err := parseImageRef(line)
		if err != nil {
			return err
		}
		repo, err := localRepo(r, s.rules, s.server.Host)
		if err != nil {
			return err
		}
		sep := ":"
		if r.Digest != "" {
			sep = "@"
		}
		local = append(local, repo+sep+r.ref())
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
func (s *source) reference(line string) (imageRef, name.Reference, error) {
	r, err := parseImageRef(line)
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
		sep := ":"
		if r.Digest != "" {
			sep = "@"
		}
		target = s.server.Host + "/" + local + sep + r.ref()
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
func (f *sourceFlags) platformNote() string { return strings.ReplaceAll(f.platform, " ", "") }

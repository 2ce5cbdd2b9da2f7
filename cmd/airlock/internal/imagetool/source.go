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
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/images"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"
)

// DefaultServer is where warm and bundle export pull through when neither
// --config, --server nor $AIRLOCK_SERVER says: the lab's airlock.
const DefaultServer = "http://127.0.0.1:5000"

// SourceOptions say where warm and bundle export pull images from.
type SourceOptions struct {
	Config, Server, Platform string
	Concurrency              int
	Insecure, Direct         bool
}

// Register registers the options' flags; direct adds --direct.
func (f *SourceOptions) Register(fs *pflag.FlagSet, direct bool) {
	fs.StringVar(&f.Config, "config", "", "airlock configuration: its cache rules map references, its listen address is the server")
	fs.StringVar(&f.Server, "server", "", "URL of the running airlock to pull through (default: http://<listen> of --config, else $AIRLOCK_SERVER, else "+DefaultServer+")")
	fs.StringVar(&f.Platform, "platform", "", "platforms to take from multi-platform images, e.g. linux/amd64,linux/arm64 (default all)")
	fs.IntVar(&f.Concurrency, "concurrency", 4, "blobs fetched at once")
	fs.BoolVar(&f.Insecure, "insecure", false, "do not verify TLS certificates")
	if direct {
		fs.BoolVar(&f.Direct, "direct", false, "pull each reference from its own registry (or the endpoint --config's upstreams give it) instead of through airlock")
	}
}

// source pulls images: through a running airlock, with list references
// mapped through its cache rules to local repositories, or directly from
// each reference's registry (or the endpoint the configuration's upstreams
// give its host).
type source struct {
	server    *url.URL // nil: direct
	rules     *rules.Set
	endpoints map[string]endpoint // direct: registry host -> where it is reached
	puller    *remote.Puller
	http      bool // references may use plain HTTP
	res       *images.Resolver
	hc        *http.Client // for airlock's own APIs
	origins   *origins     // which GETs airlock answered from the upstream
}

// endpoint is where a registry host is reached instead (upstreams:).
type endpoint struct {
	host     string // host[:port] of the endpoint URL
	http     bool   // plain HTTP
	insecure bool   // no TLS verification
}

func (f *SourceOptions) open() (*source, error) {
	if f.Concurrency < 1 || f.Concurrency > 64 {
		return nil, usageErrorf("--concurrency %d: must be between 1 and 64", f.Concurrency)
	}
	plats, err := images.ParsePlatforms(f.Platform)
	if err != nil {
		return nil, usageErrorf("--platform: %v", err)
	}
	s := &source{endpoints: map[string]endpoint{}}
	var keychain authn.Keychain = authn.DefaultKeychain
	if f.Config != "" {
		cfg, err := config.Load(f.Config)
		if err != nil {
			return nil, err
		}
		if s.rules, err = cfg.RuleSet(); err != nil {
			return nil, err
		}
		for _, u := range cfg.Upstreams {
			if ep, err := url.Parse(u.Endpoint); err == nil && ep.Host != "" { // Load checked it
				s.endpoints[u.Host] = endpoint{host: ep.Host, http: ep.Scheme == "http", insecure: u.Insecure}
			}
		}
		if f.Direct {
			// Direct, a reference's upstream is asked with the credential
			// set of the rule that covers it, as airlock would.
			creds, err := cfg.Credentials()
			if err != nil {
				return nil, err
			}
			hosts := map[string]string{}
			for host, ep := range s.endpoints {
				hosts[ep.host] = host
			}
			keychain = authn.NewMultiKeychain(ruleKeychain{rules: s.rules, creds: creds, hosts: hosts}, authn.DefaultKeychain)
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
	if f.Server == "" && !f.Direct {
		// As the control commands: $AIRLOCK_SERVER, else the lab's airlock.
		if f.Server = os.Getenv("AIRLOCK_SERVER"); f.Server == "" {
			f.Server = DefaultServer
		} else if !strings.Contains(f.Server, "://") {
			f.Server = "http://" + f.Server
		}
	}
	switch {
	case f.Direct && f.Server != "":
		return nil, usageErrorf("--direct and --server exclude each other")
	case f.Direct:
		s.http = f.Insecure
	default:
		u, err := url.Parse(f.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageErrorf("--server %q must be http(s)://host[:port]", f.Server)
		}
		s.server, s.http = u, u.Scheme == "http"
	}
	tr := transport(f.Concurrency, f.Insecure)
	var rt http.RoundTripper = tr
	if insecure := s.insecureHosts(); s.server == nil && len(insecure) > 0 {
		rt = &perHostTLS{secure: tr, insecure: transport(f.Concurrency, true), hosts: insecure}
	}
	s.origins = newOrigins(rt)
	s.puller, err = remote.NewPuller(remote.WithTransport(s.origins), remote.WithAuthFromKeychain(keychain),
		remote.WithUserAgent("airlock"), remote.WithJobs(f.Concurrency))
	if err != nil {
		return nil, err
	}
	s.res = &images.Resolver{Puller: s.puller, Platforms: plats}
	s.hc = &http.Client{Transport: tr, Timeout: time.Minute}
	return s, nil
}

// start opens the source and checks that its server answers.
func (f *SourceOptions) start(ctx context.Context) (*source, error) {
	src, err := f.open()
	if err != nil {
		return nil, err
	}
	return src, src.probe(ctx)
}

// ruleKeychain resolves an upstream repository to the credentials of the
// credential set of the cache rule that fetches it (anonymous when no rule
// with a credential set covers it).
type ruleKeychain struct {
	rules *rules.Set
	creds map[string]upstream.Credentials
	hosts map[string]string // endpoint host[:port] (upstreams:) -> the registry host it stands for
}

// Resolve implements authn.Keychain.
func (k ruleKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	repo, ok := r.(name.Repository)
	if !ok || k.rules == nil {
		return authn.Anonymous, nil
	}
	host := repo.RegistryStr()
	if h, ok := k.hosts[host]; ok {
		host = h
	}
	if host == name.DefaultRegistry {
		host = "docker.io" // how rules name Docker Hub
	}
	_, rule, ok := k.rules.Reverse(host, repo.RepositoryStr())
	if !ok || rule.CredentialSet == "" {
		return authn.Anonymous, nil
	}
	c, ok := k.creds[rule.CredentialSet]
	if !ok {
		return nil, fmt.Errorf("cache rule %s: credential set %q is not in the configuration", rule.Name, rule.CredentialSet)
	}
	return authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}), nil
}

// transport is the HTTP transport of a source.
func transport(concurrency int, insecure bool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency + 2
	tr.ResponseHeaderTimeout = 2 * time.Minute
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for (--insecure, upstreams' insecure)
	}
	return tr
}

// insecureHosts are the endpoints (host[:port]) whose TLS is not verified.
func (s *source) insecureHosts() map[string]bool {
	out := map[string]bool{}
	for _, ep := range s.endpoints {
		if ep.insecure && !ep.http {
			out[ep.host] = true
		}
	}
	return out
}

// perHostTLS skips TLS verification for some hosts only.
type perHostTLS struct {
	secure, insecure http.RoundTripper
	hosts            map[string]bool
}

// RoundTrip implements http.RoundTripper.
func (t *perHostTLS) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.hosts[req.URL.Host] {
		return t.insecure.RoundTrip(req)
	}
	return t.secure.RoundTrip(req)
}

// probe checks that the server answers at all, so that an address with no
// airlock behind it is one error rather than one per image.
func (s *source) probe(ctx context.Context) error {
	if s.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.server.JoinPath("/v2/").String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach airlock at %s: %w (start airlock serve, or give --server URL or --config FILE of a running one)", s.server, err)
	}
	resp.Body.Close()
	return nil
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
	switch ep, ok := s.endpoints[r.Host]; {
	case s.server != nil:
		local, err := localRepo(r, s.rules, s.server.Host)
		if err != nil {
			return r, nil, err
		}
		target = s.server.Host + "/" + r.In(local)
	case ok: // direct, to the endpoint the configuration gives this host
		target = ep.host + "/" + r.In(r.Repo)
		if ep.http {
			opts = append(opts, name.Insecure)
		}
	}
	ref, err := name.ParseReference(target, opts...)
	if err != nil {
		return r, nil, fmt.Errorf("%s: %w", line, err)
	}
	return r, ref, nil
}

// platformNote names the platforms asked for, for bundle annotations.
func (f *SourceOptions) platformNote() string { return strings.ReplaceAll(f.Platform, " ", "") }

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/manifest"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/selfsigned"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/flight"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// peers is the engine's Cluster over this replica's cluster node: owners
// from its membership, claims from its fill records, and the OCI API of
// other replicas through its peer client (their answers mapped to the
// upstream contract's errors).
type peers struct {
	node        *cluster.Node
	maxManifest int64
}

// controlVersionHeader carries the asking replica's control state version
// on every peer request (blobs, manifests, tags: set on the cluster client,
// cluster.Client.SetHeader); an owner serving another version refreshes
// before it answers (followControl).
const controlVersionHeader = "Airlock-Control-Version"

var _ engine.Cluster = (*peers)(nil)

// manifestAccept is every manifest type airlock serves: a replica serves
// the bytes it holds whatever a client accepts, and so does its owner.
var manifestAccept = strings.Join([]string{
	manifest.MediaTypeOCIIndex, manifest.MediaTypeOCIManifest,
	manifest.MediaTypeDockerList, manifest.MediaTypeDockerManifest,
}, ", ")

// Owner implements engine.Cluster.
func (p *peers) Owner(key string) (string, bool) {
	o := p.node.Members.Owner(key)
	return o, o != "" && o == p.node.Members.Self()
}

// Relayed implements engine.Cluster.
func (p *peers) Relayed(ctx context.Context) bool {
	_, ok := cluster.FromPeer(ctx)
	return ok
}

// ClaimFill implements engine.Cluster.
func (p *peers) ClaimFill(ctx context.Context, d digest.Digest) (engine.FillClaim, string, error) {
	c, holder, err := p.node.Fills.ClaimFill(ctx, d)
	switch {
	case err != nil:
		return nil, "", err
	case c != nil:
		return fillClaim{c}, "", nil
	case holder == p.node.Members.Self():
		return nil, "", nil
	}
	return nil, holder, nil
}

// fillClaim is a cluster.Claim as the engine sees it.
type fillClaim struct{ *cluster.Claim }

func (c fillClaim) Takeover() bool {
	_, ok := c.Claim.Takeover()
	return ok
}

// Blob implements engine.Cluster.
func (p *peers) Blob(ctx context.Context, peer, repo string, d digest.Digest, offset int64, head bool) (upstream.BlobBody, error) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	resp, err := p.node.Client.Relay(ctx, peer, method, "/v2/"+repo+"/blobs/"+d.String(), offset)
	if err != nil {
		return upstream.BlobBody{}, peerErr(peer, err)
	}
	size := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		size = rangeTotal(resp.Header.Get("Content-Range"))
	}
	if size < 0 {
		resp.Body.Close()
		return upstream.BlobBody{}, peerErr(peer, fmt.Errorf("blob %s: no size in the answer", d))
	}
	if head {
		resp.Body.Close()
		return upstream.BlobBody{Size: size}, nil
	}
	return upstream.BlobBody{Body: resp.Body, Offset: offset, Size: size}, nil
}

// rangeTotal is the total of "bytes first-last/total", or -1.
func rangeTotal(h string) int64 {
	_, total, ok := strings.Cut(h, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Manifest implements engine.Cluster: a body is verified against the
// digest the peer names (and ref, when it is a digest).
func (p *peers) Manifest(ctx context.Context, peer, repo, ref string, head bool) (upstream.Manifest, error) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	resp, err := p.do(ctx, peer, method, "/v2/"+repo+"/manifests/"+ref, manifestAccept)
	if err != nil {
		return upstream.Manifest{}, err
	}
	defer resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return upstream.Manifest{}, peerErr(peer, fmt.Errorf("manifest %s: no digest in the answer: %v", ref, err))
	}
	if want, err := digest.Parse(ref); err == nil && want != d {
		return upstream.Manifest{}, peerErr(peer, fmt.Errorf("manifest %s: answered %s", ref, d))
	}
	m := upstream.Manifest{Digest: d, MediaType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	if head {
		return m, nil
	}
	if m.Body, err = io.ReadAll(io.LimitReader(resp.Body, p.maxManifest+1)); err != nil {
		return upstream.Manifest{}, peerErr(peer, fmt.Errorf("manifest %s: %w", ref, err))
	}
	if int64(len(m.Body)) > p.maxManifest {
		return upstream.Manifest{}, peerErr(peer, fmt.Errorf("manifest %s is larger than %d bytes", ref, p.maxManifest))
	}
	if !d.Algorithm().Available() || d.Algorithm().FromBytes(m.Body) != d {
		return upstream.Manifest{}, peerErr(peer, fmt.Errorf("manifest %s: the body does not match %s", ref, d))
	}
	m.Size = int64(len(m.Body))
	return m, nil
}

// Tags implements engine.Cluster.
func (p *peers) Tags(ctx context.Context, peer, repo, last string, n int) ([]string, bool, error) {
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	path := "/v2/" + repo + "/tags/list"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := p.do(ctx, peer, http.MethodGet, path, "application/json")
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	var l struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&l); err != nil {
		return nil, false, peerErr(peer, fmt.Errorf("tags of %s: %w", repo, err))
	}
	return l.Tags, resp.Header.Get("Link") != "", nil
}

// do sends a signed request to peer's OCI API.
func (p *peers) do(ctx context.Context, peer, method, path, accept string) (*http.Response, error) {
	req, err := p.node.Client.NewRequest(ctx, peer, method, path)
	if err != nil {
		return nil, peerErr(peer, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := p.node.Client.Do(req)
	if err != nil {
		return nil, peerErr(peer, err)
	}
	return resp, nil
}

// peerErr is a relay's failure as the upstream contract's error: the
// peer's answer keeps its status (404 is upstream.ErrNotFound); a relay
// that would loop is 508; any other failure (the peer could not be
// reached, its answer broke off or made no sense) has status 0, which the
// engine takes as "ask elsewhere".
func peerErr(peer string, err error) error {
	ue := &upstream.Error{Repo: "peer " + peer, Err: err}
	var re *cluster.RelayError
	switch {
	case errors.As(err, &re):
		ue.StatusCode = re.Status
	case errors.Is(err, cluster.ErrHopLimit):
		ue.StatusCode = http.StatusLoopDetected
	}
	return ue
}

// peerSurface is what this replica serves its peers at cluster.PeerPrefix:
// the registry's OCI API without client auth (the replica a client talks
// to has authorized it) behind the peer signature check, gated like the
// client API while the store is not ready. Its requests are counted in
// the front registry's metrics under the route "peer"; its own metrics
// stay unexported, and it logs only warnings (the front logs each peer
// request once). A request from a replica serving another control state
// refreshes this one's first (followControl).
func peerSurface(cfg *config.Config, node *cluster.Node, eng *engine.Engine, o *ops, ctl *deploy.Service, log *zap.Logger) (http.Handler, error) {
	plog := log.Named("peer")
	if plog.Core().Enabled(zap.InfoLevel) {
		plog = plog.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	}
	inner, err := registry.New(eng, plog, prometheus.NewRegistry(),
		registry.WithMaxManifestSize(cfg.Cache.MaxManifestBytes),
		registry.WithBodyIdleTimeout(time.Duration(cfg.HTTP.BodyIdleTimeout)),
		registry.WithUnavailable(o.unavailable))
	if err != nil {
		return nil, err
	}
	return node.Handler(o.gate(followControl(inner, ctl, log)))
}

// followControl serves a peer's request once this replica's control state
// is the asker's: when the request carries a version other than the one
// served here, the state's rules are refreshed first (a rule created
// through the asker a moment ago is then known here too); its pins are
// synced by the control module's Follow loop, off the request's path.
// Each version asked about is refreshed for once, however many requests
// carry it at once or later: a peer that lags behind costs one store
// read, not one per request. A refresh that fails is logged and the
// request answered with the state served.
func followControl(next http.Handler, ctl *deploy.Service, log *zap.Logger) http.Handler {
	var (
		refreshes flight.Shared[string, struct{}]
		asked     atomic.Value // string: the version refreshed for last
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(controlVersionHeader); v != "" && v != ctl.Version() && v != asked.Load() {
			_, _, err := refreshes.Do(r.Context(), v, func() (struct{}, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := ctl.RefreshRules(ctx)
				if err == nil {
					asked.Store(v)
				}
				return struct{}{}, err
			})
			if err != nil && r.Context().Err() == nil {
				log.Warn("control state: cannot refresh for a peer's request", zap.Error(err))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// maxManifest is the largest manifest the engine takes.
func maxManifest(cfg *config.Config) int64 {
	if n := cfg.Cache.MaxManifestBytes; n > 0 {
		return n
	}
	return registry.DefaultMaxManifestSize
}

// peerTLS is how this replica reaches its peers when the replicas serve
// tls:: HTTPS, trusting the system's roots and what this replica serves
// with (tls.cert's certificates, or tls.auto's CA). Replicas share one
// certificate, or certificates of one CA the system trusts; tls.auto's CA
// is each replica's own, so it suits a replica alone.
func peerTLS(cfg *config.Config) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	file := cfg.TLS.Cert
	if cfg.TLS.Auto {
		f, err := selfsigned.Ensure(filepath.Join(cfg.Storage.Dir, "tls"), tlsHosts(cfg), time.Now())
		if err != nil {
			return nil, err
		}
		file = f.CA
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, &config.Error{Msg: fmt.Sprintf("config: tls: %v (%s)", err, config.RelativePaths)}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &config.Error{Msg: "config: tls: no certificate in " + file}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

package evict_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta/badgermeta"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/clocktest"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

const (
	mcr    = "mcr.microsoft.com"
	prefix = "aks-managed-repository/"
)

// env is airlock's engine, registry and collector over an fsstore and a
// badger index, in front of a test upstream reached as mcr.microsoft.com.
type env struct {
	t     *testing.T
	up    *upstreamtest.Upstream
	srv   *httptest.Server
	eng   *engine.Engine
	col   *evict.Collector
	store *fsstore.Store
	index *badgermeta.Index
	clock *clocktest.Clock
	prom  *prometheus.Registry
	dir   string
}

func newEnv(t *testing.T, p evict.Policy) *env {
	t.Helper()
	return newEnvWith(t, p, nil)
}

// newEnvWith wraps the content store under the collector's accounting
// (to inject faults) when wrap is not nil.
func newEnvWith(t *testing.T, p evict.Policy, wrap func(evict.Store) evict.Store) *env {
	t.Helper()
	return newEnvOpts(t, p, envOpts{wrap: wrap})
}

// envOpts are the less common settings of an env.
type envOpts struct {
	wrap   func(evict.Store) evict.Store
	log    *zap.Logger     // the engine's; default: warnings to the test log
	engine []engine.Option // beside the env's own
}

func newEnvOpts(t *testing.T, p evict.Policy, o envOpts) *env {
	t.Helper()
	wrap := o.wrap
	e := &env{t: t, up: upstreamtest.New(t), clock: clocktest.New(time.Now()), prom: prometheus.NewRegistry()}
	dir := t.TempDir()
	e.dir = dir
	log := zap.NewNop()
	var err error
	if e.store, err = fsstore.New(dir + "/content"); err != nil {
		t.Fatal(err)
	}
	if e.index, err = badgermeta.Open(dir+"/meta", log, badgermeta.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.index.Close() })
	client, err := ociclient.New([]ociclient.Endpoint{{Host: mcr, URL: e.up.URL()}}, log, e.prom,
		ociclient.WithBackoff(transport.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var eng *engine.Engine
	var under evict.Store = e.store
	if wrap != nil {
		under = wrap(e.store)
	}
	e.col, err = evict.New(under, e.index, log, e.prom, p,
		evict.WithClock(e.clock.Now), evict.WithKickGap(0),
		evict.WithBusy(func(d digest.Digest) bool { return eng.Filling(d) }))
	if err != nil {
		t.Fatal(err)
	}
	elog := o.log
	if elog == nil {
		elog = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	eng, err = engine.New(e.col.Store(), e.index, client, elog, e.prom,
		append([]engine.Option{engine.WithClock(e.clock.Now), engine.WithAccessRecorder(e.col.Tracker()), engine.WithRevalidateTimeout(time.Second)}, o.engine...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	set, err := rules.NewSet([]rules.Rule{{Name: "aks-managed-mcr", Source: mcr + "/*", Target: prefix + "*", TagTTL: units.Duration(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	eng.SetRules(set, nil)
	reg, err := registry.New(eng, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), e.prom)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(reg)
	t.Cleanup(e.srv.Close)
	return e
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}

// get fetches path and checks the body against want (when not empty).
func (e *env) get(path string, want digest.Digest) ([]byte, string, error) {
	resp, err := httpClient.Get(e.srv.URL + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if want != "" {
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != want.String() {
			return nil, "", fmt.Errorf("%s: body digest %s", path, got)
		}
	}
	return b, resp.Header.Get("Content-Type"), nil
}

type descriptor struct {
	Digest   digest.Digest `json:"digest"`
	Platform *struct {
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// pull pulls repo:ref completely, as containerd would for linux/amd64:
// the manifest, for an index the amd64 manifest, then config and layers,
// each checked against its digest.
func (e *env) pull(repo, ref string) error {
	return e.pullDigest(repo, ref, "")
}

func (e *env) pullDigest(repo, ref string, want digest.Digest) error {
	body, _, err := e.get("/v2/"+repo+"/manifests/"+ref, want)
	if err != nil {
		return err
	}
	var m struct {
		Manifests []descriptor `json:"manifests"`
		Config    *descriptor  `json:"config"`
		Layers    []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	for _, c := range m.Manifests {
		if c.Platform == nil || c.Platform.Architecture == "amd64" {
			if err := e.pullDigest(repo, c.Digest.String(), c.Digest); err != nil {
				return err
			}
		}
	}
	blobs := m.Layers
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	for _, b := range blobs {
		if _, _, err := e.get("/v2/"+repo+"/blobs/"+b.Digest.String(), b.Digest); err != nil {
			return err
		}
	}
	return nil
}

// consistent checks that every link's bytes are in the store and that every
// file in the store is needed by a link.
func (e *env) consistent() {
	e.t.Helper()
	ctx := context.Background()
	needed := map[digest.Digest]bool{}
	check := func(what string, d digest.Digest) {
		if _, err := e.store.Stat(ctx, d); err != nil {
			e.t.Errorf("%s %s: %v", what, d, err)
		}
	}
	e.index.EachManifest(context.Background(), "", func(l meta.ManifestLink) error {
		check("manifest "+l.Repo, l.Digest)
		needed[l.Digest] = true
		for _, r := range l.Refs {
			needed[r] = true
		}
		return nil
	})
	e.index.EachBlob(context.Background(), "", func(l meta.BlobLink) error {
		check("blob "+l.Repo, l.Digest)
		needed[l.Digest] = true
		return nil
	})
	e.store.Walk(ctx, func(i content.Info) error {
		if !needed[i.Digest] {
			e.t.Errorf("store holds %s, which nothing needs", i.Digest)
		}
		return nil
	})
}

// metric reads a counter or gauge.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.prom.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	e.t.Fatalf("no metric %s", name)
	return 0
}

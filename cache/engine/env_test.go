package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cache/meta/memmeta"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

const (
	mcr = "mcr.microsoft.com"
	// repo is the local name of upRepo through the AKS rule.
	repo   = "aks-managed-repository/oss/kubernetes/pause"
	upRepo = "oss/kubernetes/pause"
)

// stores is the storage an engine runs on: a content store and a metadata
// index, both empty, released when the test ends.
type stores struct {
	content content.Store
	index   engine.Index
	// ingests counts the store's unfinished writes, or is nil when the
	// store cannot tell.
	ingests func(t *testing.T) int
}

// backends are the storage the behaviour tests run on, each test once per
// row. A new content or metadata backend adds its row here and must pass
// the same tests.
//
// Tests of what waits on time run in a testing/synctest bubble, on the
// backends marked bubble: their stores are opened outside the bubble and
// used from inside it, which a backend whose goroutines share a
// sync.WaitGroup with its callers (badger's write requests) cannot do.
var backends = []struct {
	name   string
	bubble bool
	open   func(t *testing.T) stores
}{
	{"memmeta", true, func(t *testing.T) stores { return onDisk(t, memmeta.New()) }},
	{"badgermeta", false, func(t *testing.T) stores {
		x, err := badgermeta.Open(t.TempDir(), zap.NewNop(), badgermeta.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return onDisk(t, x)
	}},
}

// onDisk pairs index with a filesystem content store in a temporary
// directory.
func onDisk(t *testing.T, index engine.Index) stores {
	dir := t.TempDir()
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return stores{content: s, index: index, ingests: func(t *testing.T) int {
		entries, err := os.ReadDir(filepath.Join(dir, "ingest"))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}}
}

// forEachBackend runs test once per backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, s stores)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

// inBubble runs test in a synctest bubble once per backend that can run
// there, in parallel: time in the bubble moves only when every goroutine
// of the test waits, so timeouts are exact and take no real time.
func inBubble(t *testing.T, test func(t *testing.T, s stores)) {
	for _, b := range backends {
		if !b.bubble {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			synctest.Test(t, func(t *testing.T) { test(t, s) })
		})
	}
}

// env is an engine over stores, with the AKS rule, in front of a test
// upstream: upstreamtest's registry through the real client by default, or
// the in-memory fake.
type env struct {
	t    *testing.T
	eng  *engine.Engine
	prom *prometheus.Registry
	s    stores
	up   *upstreamtest.Upstream // nil with a fake
}

type envOpt struct {
	rules    []rules.Rule
	engine   []engine.Option
	upstream *upstreamtest.Upstream // default: a new one
	endpoint string                 // default: the upstream's URL
	fake     *upstreamtest.Fake     // use it instead of an HTTP upstream
}

func aksRule() rules.Rule {
	return rules.Rule{Name: "aks-managed-mcr", Source: mcr + "/*", Target: "aks-managed-repository/*"}
}

// alwaysStale is the AKS rule with a tag TTL so short that every tag
// request after the first revalidates.
func alwaysStale() []rules.Rule {
	r := aksRule()
	r.TagTTL = units.Duration(time.Nanosecond)
	return []rules.Rule{r}
}

func newEnv(t *testing.T, s stores, o envOpt) *env {
	t.Helper()
	e := &env{t: t, prom: prometheus.NewRegistry(), s: s}
	log := zap.NewNop()
	if testing.Verbose() {
		log = zap.NewExample()
	}
	var client upstream.Client = o.fake
	if o.fake == nil {
		e.up = o.upstream
		if e.up == nil {
			e.up = upstreamtest.New(t)
		}
		if o.endpoint == "" {
			o.endpoint = e.up.URL()
		}
		c, err := ociclient.New([]ociclient.Endpoint{{Host: mcr, URL: o.endpoint}}, log, e.prom,
			ociclient.WithBackoff(transport.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 2}))
		if err != nil {
			t.Fatal(err)
		}
		client = c
	}
	opts := append([]engine.Option{engine.WithRevalidateTimeout(2 * time.Second)}, o.engine...)
	var err error
	e.eng, err = engine.New(s.content, s.index, client, log, e.prom, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if o.rules == nil {
		o.rules = []rules.Rule{aksRule()}
	}
	set, err := rules.NewSet(o.rules)
	if err != nil {
		t.Fatal(err)
	}
	e.eng.SetRules(set, nil)
	// Fills run on after the responses that started them: wait for them,
	// so that none outlives its test.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.eng.Idle(ctx); err != nil {
			t.Errorf("fills still running after the test: %v", err)
		}
	})
	return e
}

// clock is a time source for the engine (engine.WithClock) that moves
// only when told, for tests outside a synctest bubble.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// metric sums a counter of the engine's registry over matching labels.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	return promtest.Sum(e.t, e.prom, name, labels...)
}

// read returns the whole blob d of r as a client would get it: the body,
// then the fill's verdict. A response whose body or verdict fails is an
// error, whatever bytes it carried.
func (e *env) read(ctx context.Context, r string, d digest.Digest) ([]byte, error) {
	b, err := e.eng.Blob(ctx, r, d, false)
	if err != nil {
		return nil, err
	}
	defer b.Content.Close()
	body, err := readAll(b)
	if err == nil && b.Wait != nil {
		err = b.Wait(ctx)
	}
	if err != nil {
		return body, errors.Join(errors.New("broken transfer"), err)
	}
	return body, nil
}

// verified reads the rest of b as the registry serves it, then the fill's
// verdict, and checks that the bytes are the blob's.
func verified(ctx context.Context, b *cache.Blob) error {
	body, err := readAll(b)
	if err == nil && b.Wait != nil {
		err = b.Wait(ctx)
	}
	if err != nil {
		return err
	}
	if got := digest.FromBytes(body); got != b.Digest {
		return fmt.Errorf("blob %s: body hashes to %s", b.Digest, got)
	}
	return nil
}

// readAll reads the rest of b's content in large reads, as a server's copy
// to its client does.
func readAll(b *cache.Blob) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, max(b.Size, 0)+bytes.MinRead))
	_, err := buf.ReadFrom(b.Content)
	return buf.Bytes(), err
}

// layer returns the digest and bytes of an upstreamtest image's first layer.
func layer(t *testing.T, up *upstreamtest.Upstream, repoTag string, size int64) (digest.Digest, []byte) {
	t.Helper()
	img := up.PushImage(t, repoTag, size, 1)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	b, _ := io.ReadAll(rc)
	rc.Close()
	return digest.Digest(d.String()), b
}

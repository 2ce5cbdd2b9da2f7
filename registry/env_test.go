package registry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/internal/promtest"

	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

const mcr = "mcr.microsoft.com"

// env is airlock (engine + registry over httptest) in front of a test
// upstream reached as mcr.microsoft.com through an endpoint override.
type env struct {
	t       testing.TB
	up      *upstreamtest.Upstream
	srv     *httptest.Server
	eng     *engine.Engine
	prom    *prometheus.Registry
	storage string
	client  *http.Client
}

type envOpt struct {
	rules    []rules.Rule
	creds    map[string]upstream.Credentials
	endpoint string // override the upstream URL
	engine   []engine.Option
	upstream *upstreamtest.Upstream
	registry []registry.Option // push, auth
	log      *zap.Logger       // default: nop (example logger with -v)
}

func aksRule() rules.Rule {
	return rules.Rule{Name: "aks-managed-mcr", Source: mcr + "/*", Target: "aks-managed-repository/*"}
}

func newEnv(t testing.TB, o envOpt) *env {
	t.Helper()
	e := &env{t: t, prom: prometheus.NewRegistry(), storage: t.TempDir()}
	e.up = o.upstream
	if e.up == nil {
		e.up = upstreamtest.New(t)
	}
	if o.rules == nil {
		o.rules = []rules.Rule{aksRule()}
	}
	if o.endpoint == "" {
		o.endpoint = e.up.URL()
	}
	log := zap.NewNop()
	if testing.Verbose() {
		log = zap.NewExample()
	}
	if o.log != nil {
		log = o.log
	}
	store, err := fsstore.New(e.storage + "/content")
	if err != nil {
		t.Fatal(err)
	}
	index, err := badgermeta.Open(e.storage+"/meta", log, badgermeta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { index.Close() })
	client, err := ociclient.New([]ociclient.Endpoint{{Host: mcr, URL: o.endpoint}}, log, e.prom,
		ociclient.WithBackoff(transport.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 2}))
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]engine.Option{engine.WithRevalidateTimeout(2 * time.Second)}, o.engine...)
	e.eng, err = engine.New(store, index, client, log, e.prom, opts...)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.NewSet(o.rules)
	if err != nil {
		t.Fatal(err)
	}
	e.eng.SetRules(set, o.creds)
	reg, err := registry.New(e.eng, log, e.prom, o.registry...)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(reg)
	t.Cleanup(e.srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return e
}

// do sends a request to airlock and returns the response with its body read.
func (e *env) do(method, path string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	return e.send(method, path, nil, hdr...)
}

// send is do with a request body.
func (e *env) send(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// metric reads a counter's value from the engine's registry.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	return promtest.Sum(e.t, e.prom, name, labels...)
}

// errorCode returns the first OCI error code of a body.
func errorCode(b []byte) string {
	s := string(b)
	i := strings.Index(s, `"code":"`)
	if i < 0 {
		return ""
	}
	s = s[i+8:]
	return s[:strings.Index(s, `"`)]
}

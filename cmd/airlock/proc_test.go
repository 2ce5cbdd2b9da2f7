package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/proctest"
	"github.com/opencontainers/go-digest"
)

// The process tests run the real binary: $AIRLOCK_BIN, or this package
// built once per test run.
var bin = &proctest.Binary{Pkg: "."}

// asMainEnv makes this test binary run as airlock itself: the bench starts
// its airlock target by re-executing os.Executable().
const asMainEnv = "AIRLOCK_TEST_RUN_AS_MAIN=1"

func TestMain(m *testing.M) {
	if os.Getenv(strings.Split(asMainEnv, "=")[0]) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := azuritetest.Main(m) // the tests needing Azurite share one
	bin.Remove()
	os.Exit(code)
}

// airlockBinary is the airlock binary's path.
func airlockBinary(t *testing.T) string { return bin.Path(t) }

// proc is airlock serve running as a child process (its stdout
// discarded, its stderr kept).
type proc struct {
	*proctest.Proc
	t    *testing.T
	base string
}

// startProc starts airlock serve --config cfg; it listens on addr.
func startProc(t *testing.T, cfg, addr string) *proc {
	t.Helper()
	cmd := exec.Command(airlockBinary(t), "serve", "--config", cfg)
	cmd.Stdout = io.Discard
	return &proc{Proc: proctest.Start(t, "airlock serve", cmd), t: t, base: "http://" + addr}
}

// startProcReady is startProc, then waitReady.
func startProcReady(t *testing.T, cfg, addr string) *proc {
	t.Helper()
	p := startProc(t, cfg, addr)
	p.waitReady()
	return p
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady() {
	p.t.Helper()
	p.WaitHTTP(p.t, p.base+"/readyz", 30*time.Second)
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(timeout time.Duration) int {
	p.t.Helper()
	return p.Stop(p.t, syscall.SIGTERM, timeout)
}

// throttle is a reverse proxy to target that sends response bodies slowly,
// so that fills are in flight long enough to be interrupted.
func throttle(t *testing.T, target string, chunk int, every time.Duration) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = nil
	rp.ModifyResponse = func(r *http.Response) error {
		r.Body = &slowBody{rc: r.Body, chunk: chunk, every: every}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	s := httptest.NewServer(rp)
	t.Cleanup(s.Close)
	return s.URL
}

type slowBody struct {
	rc    io.ReadCloser
	chunk int
	every time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	time.Sleep(b.every)
	if len(p) > b.chunk {
		p = p[:b.chunk]
	}
	return b.rc.Read(p)
}

func (b *slowBody) Close() error { return b.rc.Close() }

// puller pulls images through a running airlock, checking every complete
// body against its digest.
type puller struct {
	base   string
	client *http.Client
}

func newPuller(base string) *puller {
	return &puller{base: base, client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// errCorrupt marks a complete 200 response whose bytes are wrong: never
// acceptable, even from a server being killed.
type errCorrupt struct{ msg string }

func (e *errCorrupt) Error() string { return e.msg }

func (p *puller) get(path string, want digest.Digest) ([]byte, error) {
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err // cut: the client sees a broken transfer and retries
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, &errCorrupt{fmt.Sprintf("%s: %d bytes of %d without an error", path, len(b), resp.ContentLength)}
	}
	if want != "" {
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != want.String() {
			return nil, &errCorrupt{fmt.Sprintf("%s: complete response with digest %s", path, got)}
		}
	}
	return b, nil
}

// pull pulls repo:ref completely (every platform of an index).
func (p *puller) pull(repo, ref string, want digest.Digest) error {
	body, err := p.get("/v2/"+repo+"/manifests/"+ref, want)
	if err != nil {
		return err
	}
	var m struct {
		Manifests []struct{ Digest digest.Digest } `json:"manifests"`
		Config    *struct{ Digest digest.Digest }  `json:"config"`
		Layers    []struct{ Digest digest.Digest } `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return &errCorrupt{fmt.Sprintf("%s:%s: manifest is not JSON: %v", repo, ref, err)}
	}
	for _, c := range m.Manifests {
		if err := p.pull(repo, c.Digest.String(), c.Digest); err != nil {
			return err
		}
	}
	if m.Config != nil {
		m.Layers = append(m.Layers, *m.Config)
	}
	for _, l := range m.Layers {
		if _, err := p.get("/v2/"+repo+"/blobs/"+l.Digest.String(), l.Digest); err != nil {
			return err
		}
	}
	return nil
}

package mar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// sharedCache is the layer cache shared by this package's tests, so the
// small catalog is generated about once per run (generation into one
// directory is concurrency-safe).
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mar-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(leaktest.Check(code))
}

// start runs an emulator for the test and closes it at cleanup.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = sharedCache
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// client is an HTTP client that does not follow redirects and drops its
// connections at cleanup (goleak).
type client struct {
	t     *testing.T
	hc    *http.Client
	tr    *http.Transport
	token string
}

func newClient(t *testing.T) *client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, tr: tr, hc: &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// login fetches an anonymous token from the server.
func (c *client) login(s *Server) *client {
	c.t.Helper()
	resp, body := c.do("GET", s.URL()+"/oauth2/token?scope=repository:oss/kubernetes/pause:pull&service="+s.Addr(), nil)
	if resp.StatusCode != 200 {
		c.t.Fatalf("token: %s %s", resp.Status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		c.t.Fatalf("token body %s: %v", body, err)
	}
	c.token = tok.AccessToken
	return c
}

// do sends a request (with the token if any) and reads the whole body.
func (c *client) do(method, url string, hdr map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	resp, body, err := c.try(method, url, hdr)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, body
}

func (c *client) try(method, url string, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	if c.token != "" && !strings.Contains(url, "/docker/registry/") {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// errCode returns the first OCI error code in body.
func errCode(body []byte) string {
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// image returns a catalog image or fails.
func image(t *testing.T, s *Server, repo, tag string) catalog.Image {
	t.Helper()
	img, ok := s.Catalog().Image(repo, tag)
	if !ok {
		t.Fatalf("%s:%s not in catalog", repo, tag)
	}
	return img
}

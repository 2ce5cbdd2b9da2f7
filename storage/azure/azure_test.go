package azure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"workload identity", Config{AccountName: "acct", Container: "airlock"}, ""},
		{"azurite", Config{ServiceURL: "http://127.0.0.1:10000/devstoreaccount1", AccountName: "devstoreaccount1", AccountKeyEnv: "K", Container: "air-lock-1"}, ""},
		{"no account", Config{Container: "airlock"}, "accountName or serviceURL"},
		{"two keys", Config{AccountName: "a", AccountKey: "x", AccountKeyFile: "f", Container: "airlock"}, "at most one"},
		{"key without account", Config{ServiceURL: "https://h", AccountKey: "x", Container: "airlock"}, "needs accountName"},
		{"bad scheme", Config{ServiceURL: "ftp://h", Container: "airlock"}, "serviceURL"},
		{"query", Config{ServiceURL: "https://h/?sv=1", Container: "airlock"}, "serviceURL"},
		{"upper container", Config{AccountName: "a", Container: "Airlock"}, "container"},
		{"short container", Config{AccountName: "a", Container: "ab"}, "container"},
		{"double hyphen", Config{AccountName: "a", Container: "air--lock"}, "container"},
		{"trailing hyphen", Config{AccountName: "a", Container: "airlock-"}, "container"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestConfigKeySources(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("a2V5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		if k == "SET" {
			return " a2V5 ", true
		}
		return "", false
	}
	for _, tc := range []struct {
		cfg     Config
		want    string
		wantErr bool
	}{
		{Config{AccountKey: "a2V5"}, "a2V5", false},
		{Config{AccountKeyEnv: "SET"}, "a2V5", false},
		{Config{AccountKeyEnv: "UNSET"}, "", true}, // never a silent fall back to workload identity
		{Config{AccountKeyFile: file}, "a2V5", false},
		{Config{AccountKeyFile: file + ".missing"}, "", true},
		{Config{}, "", false},
	} {
		got, err := tc.cfg.key(env)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%+v: key = %q, %v", tc.cfg, got, err)
		}
	}
}

// env is one Azurite shared by the subtests of a test, each in its own
// container.
type env struct {
	srv *azuritetest.Server
	n   atomic.Int64
}

func newEnv(t *testing.T) *env { return &env{srv: azuritetest.Start(t)} }

func (e *env) config() Config {
	return Config{
		ServiceURL: e.srv.ServiceURL, AccountName: e.srv.AccountName, AccountKey: e.srv.AccountKey,
		Container: azuritetest.ContainerName("t"),
	}
}

func (e *env) open(t *testing.T, opts ...Option) *Container {
	t.Helper()
	c, err := Open(context.Background(), e.config(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countingTransport counts the requests a client sends.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultClient.Do(r)
}

func TestAzurite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("OpenCreatesContainerOnce", func(t *testing.T) { t.Parallel(); testOpen(t, e) })
	t.Run("Metrics", func(t *testing.T) { t.Parallel(); testMetrics(t, e) })
	t.Run("ErrorSentinels", func(t *testing.T) { t.Parallel(); testErrors(t, e) })
	t.Run("LeaseOneWinner", func(t *testing.T) { t.Parallel(); testLeaseOneWinner(t, e) })
	t.Run("LeaseFencesWrites", func(t *testing.T) { t.Parallel(); testLeaseFences(t, e) })
	t.Run("LeaseBreak", func(t *testing.T) { t.Parallel(); testLeaseBreak(t, e) })
	t.Run("LeaseExpiry", func(t *testing.T) { t.Parallel(); testLeaseExpiry(t, e) })
	t.Run("LeaseKeep", func(t *testing.T) { t.Parallel(); testLeaseKeep(t, e) })
	t.Run("LeaseHold", func(t *testing.T) { t.Parallel(); testLeaseHold(t, e) })
}

// WithMetrics counts each request by the area of the blob it names, its
// method and the answer's status code.
func testMetrics(t *testing.T, e *env) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c, err := Open(ctx, e.config(), WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "meta/t/x", []byte("{}"), Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "meta/t/x", []byte("{}"), Cond{IfNoneMatch: azcore.ETagAny}); !errors.Is(err, ErrExists) {
		t.Fatalf("create-only write over a record: %v", err)
	}
	if _, _, err := c.Get(ctx, "blobs/sha256/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing blob: %v", err)
	}
	for _, tc := range []struct {
		area, method, code string
		want               float64
	}{
		{"container", "GET", "404", 1}, // Open asked, then created it
		{"container", "PUT", "201", 1},
		{"meta", "PUT", "201", 1},
		{"meta", "PUT", "409", 1},
		{"blobs", "GET", "404", 1},
	} {
		if got := promtest.Sum(t, reg, "airlock_storage_requests_total", "area", tc.area, "method", tc.method, "code", tc.code); got != tc.want {
			t.Errorf("%s %s %s: %v requests, want %v", tc.area, tc.method, tc.code, got, tc.want)
		}
	}
	if got := promtest.Sum(t, reg, "airlock_storage_requests_total"); got != 5 {
		t.Errorf("%v requests in all, want 5", got)
	}
	if _, err := New(e.config(), WithMetrics(reg)); err == nil {
		t.Fatal("a second client counting on the same registry was built")
	}
}

func testOpen(t *testing.T, e *env) {
	ctx := context.Background()
	cfg := e.config()
	var tr countingTransport
	c, err := Open(ctx, cfg, WithTransport(&tr))
	if err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 2 { // asked, then created
		t.Fatalf("first Open sent %d requests, want 2", tr.n.Load())
	}
	if _, err := c.Put(ctx, "x", []byte("kept"), Cond{}); err != nil {
		t.Fatal(err)
	}
	// Opening again finds the container (one request) and keeps its blobs;
	// the key may come from the environment.
	key := cfg.AccountKey
	cfg.AccountKey, cfg.AccountKeyEnv = "", "AIRLOCK_TEST_KEY"
	tr.n.Store(0)
	c2, err := Open(ctx, cfg, WithTransport(&tr), WithLookupEnv(func(string) (string, bool) { return key, true }))
	if err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 1 {
		t.Fatalf("second Open sent %d requests, want 1", tr.n.Load())
	}
	if b, _, err := c2.Get(ctx, "x"); err != nil || string(b) != "kept" {
		t.Fatalf("Get after reopen: %q %v", b, err)
	}
	// A wrong key is refused by the service, not ignored.
	cfg.AccountKeyEnv, cfg.AccountKey = "", "d3Jvbmcga2V5"
	if _, err := Open(ctx, cfg); err == nil {
		t.Fatal("Open with a wrong key succeeded")
	}
}

func testErrors(t *testing.T, e *env) {
	ctx := context.Background()
	c := e.open(t)
	if _, _, err := c.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := c.Stat(ctx, "missing"); !errors.Is(err, ErrNotFound) { // HEAD: no body
		t.Fatalf("Stat missing: %v", err)
	}
	if err := c.Delete(ctx, "missing", Cond{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete missing: %v", err)
	}
	etag, err := c.Put(ctx, "rec", []byte("v1"), Cond{IfNoneMatch: azcore.ETagAny})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Put(ctx, "rec", []byte("v2"), Cond{IfNoneMatch: azcore.ETagAny})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second create-only Put: %v", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Fatalf("the SDK's error is not reachable: %v", err)
	}
	etag2, err := c.Put(ctx, "rec", []byte("v2"), Cond{IfMatch: etag})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "rec", []byte("v3"), Cond{IfMatch: etag}); !errors.Is(err, ErrConditionNotMet) {
		t.Fatalf("Put with a stale ETag: %v", err)
	}
	if err := c.Delete(ctx, "rec", Cond{IfMatch: etag}); !errors.Is(err, ErrConditionNotMet) {
		t.Fatalf("Delete with a stale ETag: %v", err)
	}
	b, p, err := c.Get(ctx, "rec")
	if err != nil || string(b) != "v2" || p.ETag != etag2 || p.Size != 2 {
		t.Fatalf("Get: %q %+v %v", b, p, err)
	}
	if err := c.Delete(ctx, "rec", Cond{IfMatch: etag2}); err != nil {
		t.Fatal(err)
	}
}

// New contacts nothing: a replica can start before its storage answers,
// and Ensure then finds out. An unreachable service is Unreachable, an
// answer about a blob is not.
func TestNewThenEnsure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var tr countingTransport
	c, err := New(Config{ServiceURL: "http://" + addr + "/devstoreaccount1", AccountName: "devstoreaccount1", AccountKey: "a2V5", Container: "ctr1"},
		WithTransport(&tr), WithRetry(policy.RetryOptions{MaxRetries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 0 {
		t.Fatalf("New sent %d requests", tr.n.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Ensure(ctx)
	if err == nil || !Unreachable(err) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Ensure with nothing listening: %v (unreachable %v)", err, Unreachable(err))
	}
	if Unreachable(fmt.Errorf("get: %w", ErrNotFound)) || Unreachable(nil) {
		t.Fatal("a missing blob counts as an unreachable store")
	}
}

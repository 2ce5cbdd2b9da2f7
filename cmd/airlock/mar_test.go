package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/proctest"
)

func TestMarUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--bogus"},
		{"extra-arg"},
		{"--scale", "huge"},
		{"--catalog", "eks"},
		{"--fault", "kind=blob"},
		{"--fault", "kind=nope,cut=1"},
		{"--extra", "x"},
		{"--seed", "-1"},
		{"--log-level", "loud"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"mar"}, args...), &stdout, &stderr)
		if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), "airlock mar: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestMarHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"mar", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-listen", "kind=blob-data,cut=1000,count=1", "unreachable", "/_mar/stats"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestMarRunsAndShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr proctest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mar", "--listen", "127.0.0.1:0", "--cache-dir", t.TempDir(), "--log-level", "warn",
			"--fault", "kind=manifest,status=503,count=1"}, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`registry (http://127\.0\.0\.1:\d+) data`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("exited %d early: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no address printed: %q %q", stdout.String(), stderr.String())
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := hc.Get(base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /v2/: %s", resp.Status)
	}
	resp, err = hc.Get(base + "/_mar/faults")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /_mar/faults: %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown after cancel")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Error("listener still open after shutdown")
	}
}

func TestMarListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"mar", "--listen", ln.Addr().String(), "--cache-dir", t.TempDir()}, &stdout, &stderr)
	if code == 0 || code == 2 || !strings.Contains(stderr.String(), "listen") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

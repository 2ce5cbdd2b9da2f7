package ociclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func newClient(t *testing.T, url string) *Client {
	t.Helper()
	c, err := New([]Endpoint{{Host: "mcr.microsoft.com", URL: url}}, zap.NewNop(), prometheus.NewRegistry(),
		WithBackoff(transport.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 3}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenFlowAndRedirect(t *testing.T) {
	t.Parallel()
	m := upstreamtest.NewAuthRedirect(t, "", "")
	img := m.Up.PushImage(t, "oss/kubernetes/pause:3.10", 10_000, 1)
	raw, _ := img.RawManifest()
	dg, _ := img.Digest()
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	lrc, _ := layers[0].Compressed()
	want, _ := io.ReadAll(lrc)

	c := newClient(t, m.API.URL)
	r := upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/kubernetes/pause"}
	ctx := context.Background()
	man, err := c.Manifest(ctx, r, "3.10", false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(man.Body, raw) || man.Digest.String() != dg.String() {
		t.Fatalf("manifest differs")
	}
	h, err := c.Manifest(ctx, r, "3.10", true)
	if err != nil || h.Digest != man.Digest || h.Body != nil || h.Size != int64(len(raw)) {
		t.Fatalf("HEAD: %+v %v", h, err)
	}
	b, err := c.Blob(ctx, r, digest.Digest(ld.String()), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b.Body)
	b.Body.Close()
	if !bytes.Equal(got, want) || b.Size != int64(len(want)) {
		t.Fatalf("blob through redirect differs")
	}
	b, err = c.Blob(ctx, r, digest.Digest(ld.String()), 100, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(b.Body)
	b.Body.Close()
	if b.Offset != 100 || !bytes.Equal(got, want[100:]) {
		t.Fatalf("ranged blob: offset %d, equal %v", b.Offset, bytes.Equal(got, want[100:]))
	}
	if size, err := c.StatBlob(ctx, r, digest.Digest(ld.String())); err != nil || size != int64(len(want)) {
		t.Fatalf("StatBlob: %d %v", size, err)
	}
	if m.AuthOnData.Load() != 0 {
		t.Fatalf("the bearer token was sent to the data host")
	}
	if n := m.Tokens.Load(); n != 1 {
		t.Fatalf("token requests %d, want 1 (shared by every request to the repository)", n)
	}
	if _, err := c.Manifest(ctx, r, "nope", false); !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("missing tag: want ErrNotFound, got %v", err)
	}
}

func TestBasicCredentials(t *testing.T) {
	t.Parallel()
	m := upstreamtest.NewAuthRedirect(t, "puller", "s3cret")
	m.Up.PushImage(t, "private/app:v1", 100, 1)
	c := newClient(t, m.API.URL)
	ctx := context.Background()
	good := upstream.Repo{Host: "mcr.microsoft.com", Name: "private/app", Auth: upstream.Credentials{Username: "puller", Password: "s3cret"}}
	if _, err := c.Manifest(ctx, good, "v1", false); err != nil {
		t.Fatalf("with the credential set: %v", err)
	}
	bad := good
	bad.Auth.Password = "wrong"
	_, err := c.Manifest(ctx, bad, "v1", false)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: want a 401 upstream error, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(fmt.Sprint(bad), "wrong") {
		t.Fatalf("the password leaked into an error: %v", err)
	}
}

func TestRetriesTemporaryErrors(t *testing.T) {
	t.Parallel()
	up := upstreamtest.New(t)
	up.PushImage(t, "oss/app:v1", 100, 1)
	up.AddFault(upstreamtest.Fault{PathContains: "/manifests/v1", Status: 503, Times: 2})
	c := newClient(t, up.URL())
	r := upstream.Repo{Host: "mcr.microsoft.com", Name: "oss/app"}
	if _, err := c.Manifest(context.Background(), r, "v1", false); err != nil {
		t.Fatalf("two 503s then success must be retried: %v", err)
	}
	if n := up.Count("GET", "/manifests/v1"); n != 3 {
		t.Fatalf("GETs %d, want 3", n)
	}
	up.AddFault(upstreamtest.Fault{PathContains: "/manifests/v1", Status: 429, RetryAfter: 7})
	_, err := c.Manifest(context.Background(), r, "v1", false)
	var ue *upstream.Error
	if !errors.As(err, &ue) || !ue.Throttled() || ue.RetryAfter != 7*time.Second || !ue.Temporary() {
		t.Fatalf("persistent 429: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	c := newClient(t, "http://"+upstreamtest.Unreachable(t))
	_, err := c.Manifest(context.Background(), upstream.Repo{Host: "mcr.microsoft.com", Name: "x"}, "v1", false)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.StatusCode != 0 || !ue.Temporary() || errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestBadEndpoint(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://x", "http://", "http://x/path", "::"} {
		if _, err := New([]Endpoint{{Host: "h", URL: u}}, zap.NewNop(), prometheus.NewRegistry()); err == nil {
			t.Errorf("endpoint %q accepted", u)
		}
	}
}

package azupload_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/azupload"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/clocktest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

// reads counts the requests a replica sends that read a session's bytes.
type reads struct {
	mu    sync.Mutex
	n     int
	bytes int64
}

func (c *reads) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/"+azupload.DataPrefix) {
		c.mu.Lock()
		c.n++
		c.bytes += resp.ContentLength
		c.mu.Unlock()
	}
	return resp, err
}

func (c *reads) count() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.bytes
}

// Commit on another replica finishes the hash from the recorded state:
// it reads none of the bytes when the store copies inside the account,
// and reads them once when it streams them into the content store. The
// copy makes an append blob, the stream a block blob.
func testCommitReadsNothing(t *testing.T, srv *azuritetest.Server) {
	for _, tc := range []struct {
		name      string
		opts      []azupload.Option
		wantReads int
		blobType  blob.BlobType
	}{
		{"Copy", nil, 0, blob.BlobTypeAppendBlob},
		{"Stream", []azupload.Option{azupload.WithoutServerCopy()}, 1, blob.BlobTypeBlockBlob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := azuritetest.ContainerName("u")
			r1 := openReplica(t, srv, name, upload.Limits{}, tc.opts...)
			counter := &reads{}
			r2 := openReplicaWith(t, srv, name, upload.Limits{}, []azure.Option{azure.WithTransport(counter)}, tc.opts...)
			b := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			s, err := r1.uploads.Start(bg, upload.Options{Repo: "team/app"})
			if err != nil {
				t.Fatal(err)
			}
			for _, half := range [][]byte{b[:len(b)/2], b[len(b)/2:]} {
				if _, err := s.Append(bg, s.Size(), bytes.NewReader(half)); err != nil {
					t.Fatal(err)
				}
			}
			d := digest.FromBytes(b)
			s2, err := r2.uploads.Open(bg, s.ID())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s2.Commit(bg, d); err != nil {
				t.Fatal(err)
			}
			n, got := counter.count()
			if n != tc.wantReads || got != int64(tc.wantReads*len(b)) {
				t.Fatalf("the commit read the session's bytes %d times (%d bytes), want %d", n, got, tc.wantReads)
			}
			p, err := r1.ctr.Client().NewBlobClient("blobs/sha256/"+d.Encoded()).GetProperties(bg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *p.BlobType != tc.blobType {
				t.Fatalf("published as %s, want %s", *p.BlobType, tc.blobType)
			}
			got2, err := content.ReadAll(bg, r1.content, d)
			if err != nil || !bytes.Equal(got2, b) {
				t.Fatalf("read back: %d bytes, %v", len(got2), err)
			}
		})
	}
}

// The idle clock restarts with every append, on whichever replica; a
// session idle for the timeout is then unknown everywhere.
func testIdleClock(t *testing.T, srv *azuritetest.Server) {
	const idle = 10 * time.Minute
	clk := clocktest.New(time.Now())
	name := azuritetest.ContainerName("u")
	r1 := openReplica(t, srv, name, upload.Limits{Timeout: idle}, azupload.WithClock(clk.Now))
	r2 := openReplica(t, srv, name, upload.Limits{Timeout: idle}, azupload.WithClock(clk.Now))
	s, err := r1.uploads.Start(bg, upload.Options{Repo: "r"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(what string) upload.Session {
		t.Helper()
		v, err := r2.uploads.Open(bg, s.ID())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	clk.Advance(idle - time.Minute)
	v := open("before the timeout")
	if _, err := v.Append(bg, 0, strings.NewReader("more")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(idle - time.Minute)
	open("an append on another replica did not restart the idle clock")
	clk.Advance(2 * time.Minute)
	if _, err := r1.uploads.Open(bg, s.ID()); !errors.Is(err, upload.ErrUnknown) {
		t.Fatalf("after the timeout: %v, want ErrUnknown", err)
	}
	if got := r1.uploads.Stats().Expired; got != 1 {
		t.Fatalf("expired on r1: %d", got)
	}
}

package azstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
)

// copyFaker passes requests to Azurite (which copies at once) and makes a
// copy look as the service may answer it: still pending after the start
// (pending), then failed at the first look (fail), or refused at the
// start (refuse).
type copyFaker struct {
	pending, fail, refuse bool

	mu    sync.Mutex
	looks int // HEADs of the copy's destination while pending
}

func (f *copyFaker) Do(req *http.Request) (*http.Response, error) {
	copying := false
	for k := range req.Header { // the SDK sets it in lower case, not canonical
		copying = copying || req.Method == http.MethodPut && strings.EqualFold(k, "x-ms-copy-source")
	}
	if copying && f.refuse {
		h := http.Header{"X-Ms-Error-Code": {"CannotVerifyCopySource"}}
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h,
			Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || !f.pending {
		return resp, err
	}
	switch {
	case copying:
		resp.Header.Set("x-ms-copy-status", "pending")
	case req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/"+prefix):
		f.mu.Lock()
		f.looks++
		first := f.looks == 1
		f.mu.Unlock()
		switch {
		case f.fail:
			resp.Header.Set("x-ms-copy-status", "failed")
			resp.Header.Set("x-ms-copy-status-description", "500 InternalError: copy failed")
		case first:
			resp.Header.Set("x-ms-copy-status", "pending")
		}
	}
	return resp, err
}

// openWith opens the container name with requests through tr.
func (e *env) openWith(t testing.TB, name string, tr *copyFaker) *azure.Container {
	t.Helper()
	return azuretest.Open(t, e.srv, name, azure.WithTransport(tr))
}

// Copy commits a blob from another blob of the container: once the
// service says the copy succeeded (at once, or after it was pending);
// never from a source that changed; touching a blob already there. A
// copy that fails or is refused leaves no blob behind and says ErrNoCopy.
func TestCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b, d := testBlob(100_000, 7)
	for _, tc := range []struct {
		name    string
		faker   *copyFaker
		wantErr error
		looks   int
	}{
		{"AtOnce", &copyFaker{}, nil, 0},
		{"Pending", &copyFaker{pending: true}, nil, 3}, // pending, done, then the size check
		{"Failed", &copyFaker{pending: true, fail: true}, content.ErrNoCopy, 1},
		{"Refused", &copyFaker{refuse: true}, content.ErrNoCopy, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := e.container(t, nil)
			s := newStore(t, e.open(t, c.Name(), nil))
			fs := newStore(t, e.openWith(t, c.Name(), tc.faker))
			etag, err := c.Put(ctx, "uploads/src", b, azure.Cond{})
			if err != nil {
				t.Fatal(err)
			}
			src := content.CopySource{Name: "uploads/src", Version: string(etag)}
			info, err := fs.Copy(ctx, d, int64(len(b)), src)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("copy: %v, want %v", err, tc.wantErr)
			}
			if tc.faker.looks != tc.looks {
				t.Fatalf("looked at the copy %d times, want %d", tc.faker.looks, tc.looks)
			}
			if tc.wantErr != nil {
				if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
					t.Fatalf("a failed copy left the blob: %v", err)
				}
				return
			}
			if info.Digest != d || info.Size != int64(len(b)) {
				t.Fatalf("info %+v", info)
			}
			got, err := content.ReadAll(ctx, s, d)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read the copy from another replica: %d bytes, %v", len(got), err)
			}
		})
	}

	t.Run("SourceChanged", func(t *testing.T) {
		t.Parallel()
		c := e.container(t, nil)
		s := newStore(t, c)
		etag, err := c.Put(ctx, "uploads/src", b, azure.Cond{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "uploads/src", append(b, '!'), azure.Cond{}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Copy(ctx, d, int64(len(b)), content.CopySource{Name: "uploads/src", Version: string(etag)})
		if !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("copy of a source changed since it was verified: %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, d); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("the changed source was copied: %v", err)
		}
	})

	t.Run("Exists", func(t *testing.T) {
		t.Parallel()
		c := e.container(t, nil)
		s := newStore(t, c)
		first, err := content.WriteBlob(ctx, s, d, b)
		if err != nil {
			t.Fatal(err)
		}
		etag, err := c.Put(ctx, "uploads/src", b, azure.Cond{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // Last-Modified has whole seconds
		info, err := s.Copy(ctx, d, int64(len(b)), content.CopySource{Name: "uploads/src", Version: string(etag)})
		if err != nil {
			t.Fatal(err)
		}
		if !info.ModTime.After(first.ModTime) {
			t.Fatalf("a copy onto a committed blob did not touch it: %s, then %s", first.ModTime, info.ModTime)
		}
	})
}

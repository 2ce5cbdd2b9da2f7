package upstreamtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/airlock/airlock/upstream"
)

// The fake serves what was put, per repository, honours Range, counts
// calls, and holds bodies and gated calls until released; a held body
// that is closed fails its read.
func TestFake(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := NewFake()
		img := f.PutImage("a", "v1", 1000, "seed")
		r := upstream.Repo{Host: "example", Name: "a"}
		m, err := f.Manifest(ctx, r, "v1", false)
		if err != nil || m.Digest != img.Digest || !bytes.Equal(m.Body, img.Manifest) {
			t.Fatalf("manifest: %+v %v", m, err)
		}
		if h, err := f.Manifest(ctx, r, img.Digest.String(), true); err != nil || h.Body != nil || h.Size != int64(len(img.Manifest)) {
			t.Fatalf("HEAD by digest: %+v %v", h, err)
		}
		if _, err := f.StatBlob(ctx, upstream.Repo{Name: "b"}, img.Layer); !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("a blob of another repository: %v", err)
		}
		b, err := f.Blob(ctx, r, img.Layer, 600, -1)
		if err != nil || b.Offset != 600 || b.Size != 1000 {
			t.Fatalf("range: %+v %v", b, err)
		}
		if got, _ := io.ReadAll(b.Body); !bytes.Equal(got, img.Bytes[600:]) {
			t.Fatal("range body differs")
		}

		release := f.Hold(img.Layer, 100)
		b, _ = f.Blob(ctx, r, img.Layer, 0, -1)
		got := make(chan []byte, 1)
		go func() { all, _ := io.ReadAll(b.Body); got <- all }()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a held body ended before its release")
		default:
		}
		release()
		if all := <-got; !bytes.Equal(all, img.Bytes) {
			t.Fatalf("released body: %d bytes", len(all))
		}
		f.Hold(img.Layer, 10)
		b, _ = f.Blob(ctx, r, img.Layer, 0, -1)
		errc := make(chan error, 1)
		go func() { _, err := io.ReadAll(b.Body); errc <- err }()
		synctest.Wait()
		b.Body.Close()
		if err := <-errc; err == nil {
			t.Fatal("a held body closed under its reader read to the end")
		}

		open := f.Gate("blob HEAD")
		done := make(chan error, 1)
		go func() { _, err := f.StatBlob(ctx, r, img.Layer); done <- err }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a gated call returned before the gate opened")
		default:
		}
		open()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		f.Fail("manifest GET", errors.New("boom"))
		if _, err := f.Manifest(ctx, r, "v1", false); err == nil {
			t.Fatal("failure not injected")
		}
		if n := f.Count("blob GET"); n != 3 {
			t.Fatalf("blob GETs counted %d, want 3", n)
		}
		f.PutManifest("a", "v0", "application/vnd.oci.image.manifest.v1+json", img.Manifest)
		if tags, err := f.Tags(ctx, r); err != nil || !slices.Equal(tags, []string{"v0", "v1"}) {
			t.Fatalf("tags: %v %v", tags, err)
		}
		if _, err := f.Tags(ctx, upstream.Repo{Name: "unknown"}); !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("tags of an unknown repository: %v", err)
		}
	})
}

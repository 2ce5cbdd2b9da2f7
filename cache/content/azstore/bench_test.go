package azstore

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/internal/azuritetest"
)

// BenchmarkWarmOpen compares a warm Open and full read of a blob through
// the Azure store's spool with the filesystem store, in the same run:
// issue 13 wants warm reads through the spool at ≥ 0.9× the single
// filesystem replica. "spool-revalidate" asks the container (a HEAD to
// Azurite) on every Open, the price of WithRevalidate(0).
//
//	go test -run '^$' -bench WarmOpen -benchtime 2000x ./cache/content/azstore/
func BenchmarkWarmOpen(b *testing.B) {
	e := &env{srv: azuritetest.Start(b)}
	ctx := context.Background()
	fs, err := fsstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctr := e.container(b, nil)
	stores := []struct {
		name string
		s    content.Store
	}{
		{"fsstore", fs},
		{"spool", newStore(b, ctr)},
		{"spool-revalidate", newStore(b, ctr, WithRevalidate(0))},
	}
	for _, size := range []int{64 << 10, 4 << 20} {
		data, d := testBlob(size, 30)
		for _, st := range stores {
			if _, err := content.WriteBlob(ctx, st.s, d, data); err != nil {
				b.Fatal(err)
			}
		}
		for _, st := range stores {
			b.Run(fmt.Sprintf("%s/%dKiB", st.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					rc, _, err := st.s.Open(ctx, d)
					if err != nil {
						b.Fatal(err)
					}
					if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(size) {
						b.Fatalf("read %d bytes: %v", n, err)
					}
					rc.Close()
				}
			})
		}
	}
}

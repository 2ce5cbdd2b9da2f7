package azmeta_test

import (
	"fmt"
	"testing"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"go.uber.org/zap"
)

// BenchmarkBlobRead is the read a warm blob GET makes (Blob: is d linked
// to repo?): from this replica's cache ("azmeta-warm"), from Azurite on
// every call ("azmeta-cold", the cache off), and from badger for
// comparison.
//
//	go test -run '^$' -bench BlobRead -benchtime 2000x ./cache/meta/azmeta/
func BenchmarkBlobRead(b *testing.B) {
	srv := azuritetest.Start(b)
	ctr := azuretest.New(b, srv, "m")
	bx, err := badgermeta.Open(b.TempDir(), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bx.Close() })
	d := dg("layer")
	for _, c := range []struct {
		name string
		x    meta.BlobLinker
	}{
		{"azmeta-warm", open(b, ctr, nil)},
		{"azmeta-cold", open(b, ctr, nil, azmeta.WithCacheEntries(0))},
		{"badgermeta", bx},
	} {
		if err := c.x.LinkBlob(bg, "r", d, meta.Blob{Size: 1, Origin: meta.OriginCache}); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.x.Blob(bg, "r", d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLinkBlob is the write a fill ends with, on Azurite: the gate
// read (shared over a quarter of the settle time), the repository record
// (remembered under an unchanged gate) and the link itself.
//
//	go test -run '^$' -bench LinkBlob -benchtime 500x ./cache/meta/azmeta/
func BenchmarkLinkBlob(b *testing.B) {
	srv := azuritetest.Start(b)
	x := open(b, azuretest.New(b, srv, "m"), nil, azmeta.WithSettle(azmeta.DefaultSettle))
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if err := x.LinkBlob(bg, "r", dg(fmt.Sprint(i)), meta.Blob{Size: 1, Origin: meta.OriginCache}); err != nil {
			b.Fatal(err)
		}
	}
}

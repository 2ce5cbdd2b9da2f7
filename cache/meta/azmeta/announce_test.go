package azmeta_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/promtest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/prometheus/client_golang/prometheus"
)

// While a section is announced (its preparation runs, the settle time
// passes), links go on, on the holder's replica and on another, without
// waiting on the gate; the section proper sees them.
func testAnnounceLetsLinksGo(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := open(t, ctr, regA, azmeta.WithSettle(2*time.Second))
	b := open(t, azuretest.Open(t, srv, ctr.Name()), regB, azmeta.WithSettle(2*time.Second))
	da, db := dg("linked on a while announced"), dg("linked on b while announced")
	prepared := false
	err := a.ExclusivePrepared(bg, func(ctx context.Context) error {
		prepared = true
		if err := a.LinkBlob(ctx, "r", da, meta.Blob{Size: 1, Origin: meta.OriginCache}); err != nil {
			return fmt.Errorf("a's link while announcing: %w", err)
		}
		return b.LinkBlob(ctx, "r", db, meta.Blob{Size: 1, Origin: meta.OriginCache})
	}, func(ctx context.Context) error {
		seen := map[string]bool{}
		err := a.EachBlob(ctx, "r", func(l meta.BlobLink) error {
			seen[l.Digest.String()] = true
			return nil
		})
		if err == nil && (!seen[da.String()] || !seen[db.String()]) {
			err = fmt.Errorf("the section proper missed links made while it was announced: %v", seen)
		}
		return err
	})
	must(t, err)
	if !prepared {
		t.Fatal("prepare did not run")
	}
	if w := promtest.Sum(t, regA, "airlock_meta_gate_waits_total") + promtest.Sum(t, regB, "airlock_meta_gate_waits_total"); w != 0 {
		t.Fatalf("links waited on the gate %v times while the section was only announced", w)
	}
}

// A link whose gate read found a section announced, and which commits
// after the section began to hold links back, fails with ErrLinkRaced
// (meta.ErrRaced): the section's walk missed it.
func testLinkStraddlingHeld(t *testing.T, srv *azuritetest.Server) {
	ctr := azuretest.New(t, srv, "m")
	slow := &slowPuts{arrived: make(chan struct{}, 1)}
	a := open(t, ctr, nil)
	b := open(t, azuretest.Open(t, srv, ctr.Name(), azure.WithTransport(slow)), nil)
	d := dg("straddles the held phase")
	linked := make(chan error, 1)
	seen := false
	err := a.ExclusivePrepared(bg, func(context.Context) error {
		slow.delay.Store(int64(1500 * time.Millisecond))
		go func() { linked <- b.LinkBlob(bg, "r", d, meta.Blob{Size: 1, Origin: meta.OriginCache}) }()
		<-slow.arrived // b read the gate (announced); its link is on the way
		return nil
	}, func(ctx context.Context) error {
		return a.EachBlob(ctx, "r", func(l meta.BlobLink) error {
			seen = seen || l.Digest == d
			return nil
		})
	})
	must(t, err)
	err = <-linked
	if seen {
		t.Fatal("the walk saw a link delayed past it")
	}
	if !errors.Is(err, azmeta.ErrLinkRaced) || !errors.Is(err, meta.ErrRaced) {
		t.Fatalf("a link the section's walk missed returned %v, want ErrLinkRaced", err)
	}
}

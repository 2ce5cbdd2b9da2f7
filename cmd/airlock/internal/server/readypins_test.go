package server

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/airlock/airlock/deploy"
)

// countPins counts the syncs that reach it.
type countPins struct{ n int }

func (c *countPins) SyncPins(string, map[string][]string) error {
	c.n++
	return nil
}

// While the server is not ready, a pin sync fails without reaching the
// collector (so the control module syncs again later, never taking it for
// done); once ready, it reaches the collector.
func TestReadyPins(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	c := &countPins{}
	p := readyPins{Pinner: c, ready: &ready}
	want := map[string][]string{"cluster/aks1": {"a:b"}}
	if err := p.SyncPins("cluster/", want); !errors.Is(err, deploy.ErrPinsNotReady) || c.n != 0 {
		t.Fatalf("not ready: err %v, %d syncs reached the collector; want ErrPinsNotReady, 0", err, c.n)
	}
	ready.Store(true)
	if err := p.SyncPins("cluster/", want); err != nil || c.n != 1 {
		t.Fatalf("ready: err %v, %d syncs reached the collector; want nil, 1", err, c.n)
	}
}

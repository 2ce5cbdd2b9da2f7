package evict

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/airlock/airlock/cache/content"
)

// The quota holds while writes run, not only after they commit: a write
// reserves its bytes before it writes them (the whole blob when its size
// is known, else as the bytes arrive), and when they do not fit beside the
// store and the other reservations, the collector evicts first. Only when
// nothing more can be evicted (pins, pushed content and writes in progress
// fill the quota) is the write refused with content.ErrNoRoom, before a
// byte of it is written past the quota. The engine then serves a blob
// without keeping it.

// reservation is what one write holds of the quota.
type reservation struct {
	c *Collector
	n int64
}

// reserve holds n bytes of the quota for a write, evicting first if they
// do not fit. It returns an error wrapping content.ErrNoRoom if they cannot.
func (c *Collector) reserve(ctx context.Context, n int64) (*reservation, error) {
	r := &reservation{c: c}
	return r, r.grow(ctx, n)
}

// grow adds n bytes to the reservation, as reserve does.
func (r *reservation) grow(ctx context.Context, n int64) error {
	c := r.c
	if n <= 0 {
		return nil
	}
	for tried := false; ; tried = true {
		if c.take(r, n) {
			return nil
		}
		max := c.policy.Load().MaxBytes
		if tried || n > max || c.recentlyFull() {
			return fmt.Errorf("%w: %d bytes wanted; %d of the %d are held by the store and %d by writes in progress",
				content.ErrNoRoom, n, c.Used(), max, c.reservedBytes())
		}
		if err := c.makeRoom(ctx, n); err != nil {
			return err
		}
	}
}

// take adds n bytes to r if they fit; without a quota they always do
// (they are still counted, for a quota set later). Before the first walk
// the store's size is not known: nothing fits until a collection walked it.
func (c *Collector) take(r *reservation, n int64) bool {
	max := c.policy.Load().MaxBytes
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if max > 0 && (!c.walkedOnce.Load() || c.Used()+c.reserved+n > max) {
		return false
	}
	c.reserved += n
	r.n += n
	return true
}

// cover grows the reservation to total bytes, for a write whose size was
// not known when it started. Writes have no context: a collection it needs
// runs on its own (bounded by the store's walk and the index).
func (r *reservation) cover(total int64) error {
	if total <= r.n {
		return nil
	}
	return r.grow(context.Background(), total-r.n)
}

// commit turns the reservation into committed bytes (size of them: a blob
// committed meanwhile by another write counts again until the next walk).
func (r *reservation) commit(size int64) {
	c := r.c
	c.resMu.Lock()
	c.reserved -= r.n
	r.n = 0
	c.pending.Add(size)
	c.resMu.Unlock()
	c.maybeKick()
}

// write writes p, the bytes after the written ones, to w once the
// reservation covers them; a failed write is noted (noteErr).
func (r *reservation) write(w io.Writer, written int64, p []byte) (int, error) {
	if err := r.cover(written + int64(len(p))); err != nil {
		return 0, err
	}
	n, err := w.Write(p)
	if err != nil {
		r.c.noteErr(err)
	}
	return n, err
}

// committed ends a write that committed (info, err): its bytes are
// committed, or its error noted (noteErr).
func (r *reservation) committed(info content.Info, err error) (content.Info, error) {
	if err != nil {
		r.c.noteErr(err)
		return info, err
	}
	r.commit(info.Size)
	return info, nil
}

// release gives the reservation back (the write was abandoned).
func (r *reservation) release() {
	c := r.c
	c.resMu.Lock()
	c.reserved -= r.n
	r.n = 0
	c.resMu.Unlock()
}

func (c *Collector) reservedBytes() int64 {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	return c.reserved
}

// makeRoom runs a collection that evicts until n more bytes fit, unless a
// collection that ran while this one waited made the room already. A
// collection that could not make room is remembered: for the kick gap,
// writes that do not fit are refused without another one, so that a store
// full of pins is not walked for every write.
func (c *Collector) makeRoom(ctx context.Context, n int64) error {
	c.passMu.Lock()
	defer c.passMu.Unlock()
	if c.walkedOnce.Load() && c.fits(n) {
		return nil
	}
	if _, err := c.collect(ctx, n, time.Time{}); err != nil {
		return err
	}
	if !c.fits(n) {
		c.noRoomAt.Store(time.Now().UnixNano())
	}
	return nil
}

func (c *Collector) fits(n int64) bool {
	max := c.policy.Load().MaxBytes
	c.resMu.Lock()
	defer c.resMu.Unlock()
	return max == 0 || c.Used()+c.reserved+n <= max
}

// recentlyFull reports whether a collection found no room within the
// kick gap.
func (c *Collector) recentlyFull() bool {
	at := c.noRoomAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < c.kickGap
}

package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/airlock/airlock/internal/sleep"
	"go.uber.org/zap"
)

// DefaultRefreshInterval is how often Follow looks for a state another
// replica saved, when given no interval.
const DefaultRefreshInterval = 5 * time.Second

// CodeConcurrentUpdate is the code of a change given up because other
// writers kept changing the state under it (ARM's name for it).
const CodeConcurrentUpdate = "AnotherOperationInProgress"

// maxAttempts bounds how often one change is applied again to a state
// that another writer changed meanwhile.
const maxAttempts = 10

// pinWait bounds how long a change or a refresh waits for its pin sync
// (the store's exclusive section may be held by another replica); a sync
// that did not happen is retried by the next Refresh.
const pinWait = 5 * time.Second

// update applies fn to the stored state and saves the result, conditional
// on the version it read: if another writer saved in between, it reads
// the state again and applies fn again (fn must build its results afresh
// on each call). If the bound registry's rules no longer make a valid set
// with the base rules, nothing is saved. A change that changes nothing
// saves nothing. The engine serves the saved state at once and its pins
// are synced before update returns.
func (s *Service) update(ctx context.Context, fn func(st *State) error) error {
	err := s.mutate(ctx, fn)
	s.syncPins(ctx) // also when fn failed on a state read afresh
	return err
}

func (s *Service) mutate(ctx context.Context, fn func(st *State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if _, err := s.loadLocked(ctx); err != nil {
			return err
		}
		next := s.st.Clone()
		if err := fn(next); err != nil {
			return err
		}
		if _, _, err := s.effective(next); err != nil {
			return err
		}
		if sameState(s.st, next) {
			return nil
		}
		ver, err := s.store.Save(ctx, next, s.ver)
		if err == nil {
			s.adoptLocked(next, ver)
			return nil
		}
		if !errors.Is(err, ErrStale) {
			return fmt.Errorf("control state: save: %w", err)
		}
		s.m.stale.Inc()
		if attempt == maxAttempts {
			return fmt.Errorf("%w (%w)", NewError(ErrConflict, CodeConcurrentUpdate,
				"the control state changed %d times while this change was being saved: try again", attempt), err)
		}
		// Replicas that collided try again at different moments.
		if err := sleep.For(ctx, time.Duration(rand.Int64N(int64(attempt)*int64(10*time.Millisecond)))); err != nil {
			return err
		}
	}
}

// view runs fn on the state last loaded, which it must not change. The
// first read of a Service made with WithDeferredLoad loads it.
func (s *Service) view(ctx context.Context, fn func(st *State) error) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if !loaded {
		if _, err := s.Refresh(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.st)
}

// viewed is view for a read that answers a value.
func viewed[T any](ctx context.Context, s *Service, fn func(st *State) (T, error)) (T, error) {
	var out T
	err := s.view(ctx, func(st *State) (err error) {
		out, err = fn(st)
		return err
	})
	return out, err
}

// viewOne answers what info says of the resource lookup finds by name.
func viewOne[R, T any](ctx context.Context, s *Service, lookup func(*State, string) (R, error), name string, info func(*State, R) T) (T, error) {
	return viewed(ctx, s, func(st *State) (T, error) {
		r, err := lookup(st, name)
		if err != nil {
			var zero T
			return zero, err
		}
		return info(st, r), nil
	})
}

// deleting is update for a delete: fn fills a report that starts empty on
// each attempt, and the report is nil when the delete failed.
func (s *Service) deleting(ctx context.Context, fn func(st *State, rep *DeleteReport) error) (*DeleteReport, error) {
	var rep *DeleteReport
	err := s.update(ctx, func(st *State) error {
		rep = &DeleteReport{}
		return fn(st, rep)
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// Refresh serves the stored state if it changed since this Service last
// read or wrote it (another replica saved): the engine gets the bound
// registry's rules, the pinner the bootstrap images of the clusters
// pulling from it, as at start. It also retries a pin sync that failed.
// It reports whether the state changed.
func (s *Service) Refresh(ctx context.Context) (bool, error) {
	changed, err := s.refresh(ctx)
	s.syncPins(ctx)
	return changed, err
}

// RefreshRules is Refresh without the pin sync, for a request's path: it
// serves a state another replica saved (the engine gets its rules) and
// leaves its pins to the next Refresh (Follow), whose sync may wait for
// the store's exclusive section.
func (s *Service) RefreshRules(ctx context.Context) (bool, error) { return s.refresh(ctx) }

// refresh is Refresh without the pin sync: with a Versioner it reads the
// state only when the version moved, and not again when a concurrent call
// read that version meanwhile.
func (s *Service) refresh(ctx context.Context) (bool, error) {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	v, ok := s.store.(Versioner)
	if !ok || !loaded {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.loadLocked(ctx)
	}
	cur, err := v.Version(ctx)
	if err != nil {
		return false, fmt.Errorf("control state: version: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur == s.ver {
		return false, nil
	}
	return s.loadLocked(ctx)
}

// Follow refreshes (Refresh) now and then every interval
// (DefaultRefreshInterval if not positive) until ctx ends: a change saved
// by another replica sharing the store is served here within an interval.
// Run it on any store; on one no other process writes, a refresh costs a
// local read of the version.
func (s *Service) Follow(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		changed, err := s.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				s.log.Warn("control state: cannot refresh; serving the state last read", zap.Error(err))
			}
			failing = true
		case err == nil:
			if failing {
				s.log.Info("control state: refreshed again")
			}
			failing = false
			if changed {
				s.log.Info("control state changed in the store: serving it", zap.String("version", s.Version()))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Version is the version of the state served ("" before the first load or
// when nothing was stored). Replicas sharing the store compare theirs: one
// that serves an older state than a peer refreshes at once. It never waits
// for a load or a save in progress.
func (s *Service) Version() string {
	v, _ := s.served.Load().(string)
	return v
}

// loadLocked reads the stored state and serves it if it is not the one
// served already. Called with s.mu held.
func (s *Service) loadLocked(ctx context.Context) (bool, error) {
	st, ver, err := s.store.Load(ctx)
	if err != nil {
		return false, fmt.Errorf("control state: load: %w", err)
	}
	if s.loaded && ver == s.ver {
		return false, nil
	}
	st.fill()
	if s.loaded {
		s.m.reloads.Inc()
	}
	s.adoptLocked(st, ver)
	return true, nil
}

// adoptLocked serves st, the stored state at version ver: the engine gets
// its rules, and its pins are due. If the bound registry's rules do not
// make a valid set with the base rules (another replica's configuration
// file allowed them), the engine keeps the rules it has and changes are
// refused until the conflict is resolved. Called with s.mu held.
func (s *Service) adoptLocked(st *State, ver string) {
	s.st, s.ver, s.loaded = st, ver, true
	s.served.Store(ver)
	s.gen++
	set, creds, err := s.effective(st)
	if err != nil {
		s.log.Error("control state: the stored rules cannot be served with the configuration file's; the engine keeps its rules", zap.Error(err))
		return
	}
	s.apply(set, creds)
}

// sameState reports whether a and b would be stored alike.
func sameState(a, b *State) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

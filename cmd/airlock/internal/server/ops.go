package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/check"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/internal/ocierr"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/storage/azure"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ops keeps the store healthy for months: the startup check (readiness
// waits for it) or, on Azure, the wait until the shared store answers and
// its health afterwards, the collector (quota, eviction, pins, garbage) and
// the access tracker it feeds from the engine.
type ops struct {
	log   *zap.Logger
	store evict.Store
	index meta.Store
	col   *evict.Collector
	busy  func(digest.Digest) bool // set once the engine exists
	// azure is the shared store to wait for and watch; nil: the
	// filesystem's startup check runs instead.
	azure *azureBackend
	// connected runs once the shared store answers, before the server is
	// ready; a *config.Error it returns stops the server, another error is
	// retried like the store's.
	connected func(context.Context) error
	// beside run with the collector once the store answered (the shared
	// upload sessions' sweeper).
	beside []func(context.Context)
	// onReady is told when readiness changes (the cluster's membership).
	onReady func(bool)

	ready     atomic.Bool
	reason    atomic.Pointer[string] // why not ready
	readyCh   chan struct{}          // closed when first ready
	readyOnce sync.Once
	kick      chan struct{} // a request found the store unreachable: look now
	done      chan struct{} // closed when the collector stopped
}

func newOps(cfg *config.Config, be *backend, log *zap.Logger, reg prometheus.Registerer) (*ops, error) {
	o := &ops{log: log, store: be.store, index: be.index, azure: be.azure, busy: func(digest.Digest) bool { return false },
		readyCh: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	o.setReason("checking the store")
	if o.azure != nil {
		o.setReason("connecting to the storage")
	}
	opts := []evict.Option{evict.WithBusy(func(d digest.Digest) bool { return o.busy(d) })}
	if be.azure != nil {
		opts = append(opts, sharedEvictOptions(be.azure.ctr)...)
	}
	if d := time.Duration(cfg.Storage.GCInterval); d > 0 {
		opts = append(opts, evict.WithInterval(d))
	}
	col, err := evict.New(be.store, be.index, log.Named("gc"), reg, cfg.EvictPolicy(), opts...)
	if err != nil {
		return nil, err
	}
	o.col = col
	return o, nil
}

// engineOptions feed the engine's accesses to the tracker.
func (o *ops) engineOptions() []engine.Option {
	return []engine.Option{engine.WithAccessRecorder(o.col.Tracker())}
}

// routes are /readyz (open, like /healthz: probes carry no credentials)
// and the pins API (admin access when auth is on).
func (o *ops) routes() []registry.Option {
	return []registry.Option{
		registry.WithPublicRoute("/readyz", "readyz", http.HandlerFunc(o.readyz)),
		registry.WithRoute("/admin/pins", "admin-pins", o.col.PinsHandler()),
	}
}

func (o *ops) setReason(s string) { o.reason.Store(&s) }

func (o *ops) notReady() string {
	if p := o.reason.Load(); p != nil {
		return *p
	}
	return "checking the store"
}

func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !o.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(o.notReady() + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// gate answers the registry API and the token endpoint with 503 (never
// 404: clients would fall back past the cache) while the server is not
// ready: until the startup check is done, or the shared store answered
// (and the signing key kept there was loaded), and while it does not.
// /healthz, /readyz and /metrics answer at once.
func (o *ops) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.ready.Load() && (strings.HasPrefix(r.URL.Path, "/v2/") || strings.HasPrefix(r.URL.Path, "/oauth2/")) {
			w.Header().Set("Retry-After", "1")
			_ = ocierr.Write(w, r, 0, errcode.ErrorCodeUnavailable.WithMessage("airlock is not ready ("+o.notReady()+"); retry shortly"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// setReady changes readiness and says so to onReady.
func (o *ops) setReady(ready bool) {
	if o.ready.Swap(ready) == ready {
		return
	}
	if ready {
		o.readyOnce.Do(func() { close(o.readyCh) })
	}
	if o.onReady != nil {
		o.onReady(ready)
	}
}

// unavailable recognises a request's failure to reach the shared store
// (registry.WithUnavailable), and has the store's health looked at now.
func (o *ops) unavailable(err error) bool {
	if !azure.Unreachable(err) {
		return false
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return true
}

// start checks the store (or waits until the shared store answers), marks
// the server ready, then runs the collector (and watches the shared
// store's health) until ctx ends. A failed check is fatal: errc receives
// it.
func (o *ops) start(ctx context.Context, errc chan<- error) {
	go func() {
		defer close(o.done)
		var err error
		if o.azure != nil {
			err = o.connect(ctx)
		} else {
			_, err = check.Run(ctx, o.store, o.index, o.log.Named("check"))
		}
		if err != nil {
			if ctx.Err() == nil {
				errc <- err
			}
			return
		}
		o.setReady(true)
		var wg sync.WaitGroup
		if o.azure != nil {
			wg.Go(func() { o.watch(ctx) })
		}
		for _, run := range o.beside {
			wg.Go(func() { run(ctx) })
		}
		o.col.Run(ctx)
		wg.Wait()
	}()
}

// Timings of the shared store's health.
const (
	connectTimeout = 15 * time.Second // one attempt to reach it
	connectBackoff = 5 * time.Second  // most between attempts
	healthEvery    = 2 * time.Second
	healthTimeout  = 5 * time.Second
	// healthFailures in a row make the server not ready: one slow answer
	// is not an outage.
	healthFailures = 2
)

// connect tries until the shared store answers (or ctx ends), then runs
// connected. Only a configuration the store refuses ends it early.
func (o *ops) connect(ctx context.Context) error {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := o.azure.connect(cctx)
		if err == nil && o.connected != nil {
			err = o.connected(cctx)
		}
		cancel()
		if err == nil {
			o.log.Info("storage reachable", zap.String("container", o.azure.ctr.Name()), zap.Int("attempts", attempt))
			return nil
		}
		var ce *config.Error
		if errors.As(err, &ce) || ctx.Err() != nil {
			return err
		}
		o.setReason("waiting for the storage: " + err.Error())
		o.log.Warn("waiting for the storage", zap.String("container", o.azure.ctr.Name()), zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, connectBackoff)
	}
}

// watch asks the shared store whether it answers every healthEvery, and
// at once when a request found it unreachable: while it does not (for
// healthFailures checks in a row), the server is not ready (503 on the
// API, never 404; peers stop routing to it).
func (o *ops) watch(ctx context.Context) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.kick:
		}
		hctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := o.azure.health(hctx)
		cancel()
		if err == nil {
			fails = 0
		} else {
			fails++
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && !o.ready.Load():
			o.log.Info("storage reachable again: ready")
			o.setReady(true)
		case err != nil && fails < healthFailures:
			o.log.Warn("storage did not answer", zap.Error(err))
		case err != nil && o.ready.Load():
			o.setReason("the storage cannot be reached: " + err.Error())
			o.log.Error("storage unreachable: not ready until it answers", zap.Error(err))
			o.setReady(false)
		}
	}
}

// shutdownOps stops the collector (access times are flushed) and waits for
// fills still running, within ctx, before the index closes.
func (s *Server) shutdownOps(ctx context.Context, stop context.CancelFunc) {
	s.log.Info("shutting down: requests drained; stopping the collector, waiting for fills")
	stop()
	select {
	case <-s.ops.done:
	case <-ctx.Done():
		s.log.Warn("shutdown: the collector did not stop in time")
	}
	if err := s.engine.Idle(ctx); err != nil {
		s.log.Warn("shutdown: fills still running are abandoned", zap.Error(err))
	}
}

// Ready is closed once the startup check is done and the registry API
// answers.
func (s *Server) Ready() <-chan struct{} { return s.ops.readyCh }

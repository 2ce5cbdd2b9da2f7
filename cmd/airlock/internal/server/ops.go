package server

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/check"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/internal/ocierr"
	"github.com/airlock/airlock/registry"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ops keeps the store healthy for months: the startup check (readiness
// waits for it), the collector (quota, eviction, pins, garbage) and the
// access tracker it feeds from the engine.
type ops struct {
	log     *zap.Logger
	store   *fsstore.Store
	index   *badgermeta.Index
	col     *evict.Collector
	busy    func(digest.Digest) bool // set once the engine exists
	ready   atomic.Bool
	readyCh chan struct{} // closed when ready
	done    chan struct{} // closed when the collector stopped
}

func newOps(cfg *config.Config, store *fsstore.Store, index *badgermeta.Index, log *zap.Logger, reg prometheus.Registerer) (*ops, error) {
	o := &ops{log: log, store: store, index: index, busy: func(digest.Digest) bool { return false },
		readyCh: make(chan struct{}), done: make(chan struct{})}
	opts := []evict.Option{evict.WithBusy(func(d digest.Digest) bool { return o.busy(d) })}
	if d := time.Duration(cfg.Storage.GCInterval); d > 0 {
		opts = append(opts, evict.WithInterval(d))
	}
	col, err := evict.New(store, index, log.Named("gc"), reg, cfg.EvictPolicy(), opts...)
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

func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !o.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("checking the store\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// gate answers the registry API with 503 (never 404: clients would fall
// back past the cache) until the startup check is done. /healthz,
// /readyz and /metrics answer at once.
func (o *ops) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.ready.Load() && len(r.URL.Path) >= 4 && r.URL.Path[:4] == "/v2/" {
			w.Header().Set("Retry-After", "1")
			_ = ocierr.Write(w, r, 0, errcode.ErrorCodeUnavailable.WithMessage("airlock is checking its store; retry shortly"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// start checks the store, marks the server ready, then runs the collector
// until ctx ends. A failed check is fatal: errc receives it.
func (o *ops) start(ctx context.Context, errc chan<- error) {
	go func() {
		defer close(o.done)
		if _, err := check.Run(ctx, o.store, o.index, o.log.Named("check")); err != nil {
			if ctx.Err() == nil {
				errc <- err
			}
			return
		}
		o.ready.Store(true)
		close(o.readyCh)
		o.col.Run(ctx)
	}()
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

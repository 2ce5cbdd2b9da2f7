// Package mar is an emulator of Microsoft Artifact Registry (MAR), the
// upstream of airlock's cache rules: a read-only OCI registry serving a
// deterministic catalog of the images and artifacts an AKS node pulls, with
// MAR's anonymous bearer-token flow, blob GETs redirected (307) to a separate
// data listener, fault injection, and request counters (GET /_mar/stats) that
// let tests prove how many upstream fetches a cache made.
package mar

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/upstream/mar/catalog"
	"github.com/airlock/airlock/upstream/mar/fault"
	"github.com/airlock/airlock/upstream/mar/fromdir"
)

// Config configures a Server. The zero value serves the small aks catalog
// with seed 0 on two free loopback ports.
type Config struct {
	Listen     string          // registry listener; default "127.0.0.1:0"
	DataListen string          // data (CDN) listener for redirected blob GETs; default "127.0.0.1:0"
	Catalog    string          // catalog.NameAKS (default) or catalog.NameNone
	Scale      catalog.Scale   // default catalog.ScaleSmall
	Seed       uint64          // content seed: same seed, same digests everywhere
	From       []string        // directories of OCI layouts / image tarballs to serve too
	CacheDir   string          // layer cache root; default <os.TempDir()>/airlock-mar
	Extra      []catalog.Extra // additional generated images (e.g. one large blob)
	Faults     []fault.Fault   // initial faults
	TokenTTL   time.Duration   // bearer token lifetime; default 1h
	URLTTL     time.Duration   // lifetime of a redirect's signed data URL; default 10m
	// Progress, if set, follows the catalog's generation (catalog.Options).
	Progress func(done, total int64)
}

// Server is a running (after Start) MAR emulator.
type Server struct {
	cfg    Config
	log    *zap.Logger
	key    []byte // signs tokens and data URLs
	faults *fault.Set
	stats  *counters

	cat      *catalog.Catalog
	reg, dat *http.Server
	regLn    net.Listener
	datLn    net.Listener
	cancel   context.CancelFunc // cancels request contexts on Close
	serving  sync.WaitGroup     // Serve goroutines
	inflight sync.WaitGroup     // handlers
	gate     sync.RWMutex       // orders inflight.Add before Close's Wait
	closing  bool               // under gate
	closeMu  sync.Mutex
	closed   bool
}

// New validates cfg; nothing is generated or bound until Start.
func New(cfg Config, log *zap.Logger) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataListen == "" {
		cfg.DataListen = "127.0.0.1:0"
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.URLTTL <= 0 {
		cfg.URLTTL = 10 * time.Minute
	}
	if log == nil {
		log = zap.NewNop()
	}
	fs, err := fault.NewSet(cfg.Faults...)
	if err != nil {
		return nil, fmt.Errorf("mar: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("mar: %w", err)
	}
	return &Server{cfg: cfg, log: log, key: key, faults: fs, stats: newCounters()}, nil
}

// Start generates (or reuses) the catalog, loads the From directories, binds
// both listeners and serves in the background until Close. ctx bounds the
// startup only.
func (s *Server) Start(ctx context.Context) error {
	if s.cat != nil {
		return errors.New("mar: already started")
	}
	start := time.Now()
	b := catalog.NewBuilder()
	opts := catalog.Options{Name: s.cfg.Catalog, Scale: s.cfg.Scale, Seed: s.cfg.Seed, CacheDir: s.cfg.CacheDir, Extra: s.cfg.Extra, Progress: s.cfg.Progress}
	if err := b.Generate(ctx, opts); err != nil {
		return fmt.Errorf("mar: catalog: %w", err)
	}
	for _, dir := range s.cfg.From {
		if err := fromdir.Load(ctx, b, dir, opts.Dir(), s.log); err != nil {
			return fmt.Errorf("mar: %w", err)
		}
	}
	cat, err := b.Build()
	if err != nil {
		return fmt.Errorf("mar: catalog: %w", err)
	}
	s.cat = cat
	var lc net.ListenConfig
	if s.regLn, err = lc.Listen(ctx, "tcp", s.cfg.Listen); err != nil {
		return fmt.Errorf("mar: listen: %w", err)
	}
	if s.datLn, err = lc.Listen(ctx, "tcp", s.cfg.DataListen); err != nil {
		s.regLn.Close()
		return fmt.Errorf("mar: data listen: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.reg = s.httpServer(base, "registry", http.HandlerFunc(s.serveRegistry))
	s.dat = s.httpServer(base, "data", http.HandlerFunc(s.serveData))
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{s.reg, s.regLn}, {s.dat, s.datLn}} {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("mar: serve", zap.Error(err))
			}
		}()
	}
	s.log.Info("MAR emulator started", zap.String("registry", s.URL()), zap.String("data", "http://"+s.DataAddr()),
		zap.Int("repos", len(cat.Repos())), zap.Int("images", len(cat.Images())), zap.Int("blobs", len(cat.Blobs())),
		zap.Int64("bytes", cat.TotalBlobSize()), zap.Duration("startup", time.Since(start)))
	return nil
}

func (s *Server) httpServer(base context.Context, name string, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.stats.conn(name)
			}
		},
		ErrorLog: zap.NewStdLog(s.log.Named(name)),
	}
}

// Addr returns the registry listener's address ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.regLn.Addr().String() }

// DataAddr returns the data listener's address.
func (s *Server) DataAddr() string { return s.datLn.Addr().String() }

// URL returns the registry base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.Addr() }

// Catalog returns what the server serves (after Start).
func (s *Server) Catalog() *catalog.Catalog { return s.cat }

// Faults returns the live fault set (Add, Remove, Clear, List).
func (s *Server) Faults() *fault.Set { return s.faults }

// SetFaults replaces every fault (all or none).
func (s *Server) SetFaults(fs ...fault.Fault) error {
	_, err := s.faults.Replace(fs...)
	return err
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the counters.
func (s *Server) ResetStats() { s.stats.reset() }

// enter registers a handler in flight; false once Close is waiting.
func (s *Server) enter() bool {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

// Close stops both listeners, aborts requests in flight (delays, throttled
// bodies) and waits for every goroutine the server started.
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed || s.reg == nil {
		s.closed = true
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.cancel()
	err := errors.Join(s.reg.Shutdown(ctx), s.dat.Shutdown(ctx))
	if err != nil {
		err = errors.Join(s.reg.Close(), s.dat.Close())
	}
	s.serving.Wait()
	s.gate.Lock()
	s.closing = true
	s.gate.Unlock()
	s.inflight.Wait()
	return err
}

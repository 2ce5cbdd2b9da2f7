// Package server wires airlock serve together: the content store, the
// metadata index, the upstream client, the pull-through engine, the
// collector (quota, eviction, pins, garbage), the registry front end with
// auth and TLS, the control module and its admin API, and the listener. It
// also reloads the configuration on SIGHUP and opens a stopped server's
// control state for the CLI. With the rest of cmd/airlock it is the only
// place that picks implementations.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/registry/auth/acrauth"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Server is a running registry cache: store, index, engine and listener.
type Server struct {
	cfg    *config.Config
	log    *zap.Logger
	index  index
	spool  *azstore.Store // on Azure: the store whose background downloads Serve waits for
	node   *cluster.Node  // nil: not one of a cluster's replicas
	engine *engine.Engine
	http   *http.Server
	ln     net.Listener
	extra  []net.Listener // AddListener's, served with ln
	tlsCfg *tls.Config    // nil: plain HTTP
	up     *ociclient.Client
	ops    *ops
	prom   *metricsRegistry
	ctl    *control
	scheme string // http or https
	caFile string // tls.auto: the CA nodes must trust
}

// Option is an optional setting of New.
type Option func(*options)

type options struct {
	ln      net.Listener
	now     func() time.Time
	azure   []azure.Option
	cluster []cluster.NodeOption
}

// WithListener makes the server answer on ln (a TCP listener, wrapped in
// TLS when the configuration asks for it) instead of binding cfg.Listen. A
// caller that binds first fails before any state is opened when the address
// is taken. New takes ln over: it is closed on failure and by Close.
func WithListener(ln net.Listener) Option { return func(o *options) { o.ln = ln } }

// WithClock sets the engine's time source (tests: tag TTLs).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAzureOptions tunes the client of storage.azure (tests: a transport
// that counts or fails requests).
func WithAzureOptions(opts ...azure.Option) Option {
	return func(o *options) { o.azure = append(o.azure, opts...) }
}

// WithClusterOptions tunes the cluster node (tests: faster probes).
func WithClusterOptions(opts ...cluster.NodeOption) Option {
	return func(o *options) { o.cluster = append(o.cluster, opts...) }
}

// New opens storage and binds the listener; Serve starts answering. A
// configuration the stored state refuses is a *config.Error.
func New(cfg *config.Config, log *zap.Logger, sopts ...Option) (srv *Server, err error) {
	var o options
	for _, opt := range sopts {
		opt(&o)
	}
	if o.ln != nil {
		defer func() {
			if err != nil {
				o.ln.Close()
			}
		}()
	}
	set, err := cfg.RuleSet()
	if err != nil {
		return nil, err
	}
	creds, err := cfg.Credentials()
	if err != nil {
		return nil, err
	}
	promReg := newMetricsRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	be, err := openStorage(cfg, log, promReg, o)
	if err != nil {
		return nil, err
	}
	index := be.index
	defer func() {
		if err != nil { // a later step failed: release the index
			index.Close()
		}
	}()
	up, err := ociclient.New(endpoints(cfg), log.Named("upstream"), promReg)
	if err != nil {
		return nil, err
	}
	if be.azure == nil {
		if err := checkPushedRepos(set, index); err != nil {
			return nil, err
		}
	}
	ops, err := newOps(cfg, be, log, promReg)
	if err != nil {
		return nil, err
	}
	opts := ops.engineOptions()
	if d := time.Duration(cfg.Cache.FillTimeout); d > 0 {
		opts = append(opts, engine.WithFillTimeout(d))
	}
	if d := time.Duration(cfg.Cache.StallTimeout); d > 0 {
		opts = append(opts, engine.WithStallTimeout(d))
	}
	if d := time.Duration(cfg.Cache.RevalidateTimeout); d > 0 {
		opts = append(opts, engine.WithRevalidateTimeout(d))
	}
	if n := cfg.Cache.MaxManifestBytes; n > 0 {
		opts = append(opts, engine.WithMaxManifestSize(n))
	}
	if o.now != nil {
		opts = append(opts, engine.WithClock(o.now))
	}
	var node *cluster.Node
	var relay *peers
	if be.azure != nil && be.azure.node != nil {
		node = be.azure.node
		relay = &peers{node: node, maxManifest: maxManifest(cfg)}
		opts = append(opts, engine.WithCluster(relay, be.azure.store))
		ops.onReady = node.Members.SetReady
	}
	var aopts []acrauth.Option
	if be.azure != nil {
		// Upload sessions, the collector (newOps) and the auth signing key
		// are the cluster's, in the shared store.
		ups, upOpt, err := sharedUploads(cfg, be.azure.ctr, be.azure.index, ops.col.Store(), log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, upOpt)
		ops.beside = append(ops.beside, ups.Run)
		aopts = append(aopts, sharedAuthOption(be.azure.index))
	} else {
		opts = append(opts, pushEngineOptions(cfg)...)
	}
	eng, err := engine.New(ops.col.Store(), index, up, log.Named("cache"), promReg, opts...)
	if err != nil {
		return nil, err
	}
	ops.busy = eng.Filling
	eng.SetRules(set, creds)
	var pins deploy.Pinner = ops.col
	if be.azure != nil {
		// The store is contacted once it answers: the control loop's
		// first reconcile syncs the pins then.
		pins = readyPins{Pinner: ops.col, ready: &ops.ready}
	}
	ctl, err := openControl(cfg, log.Named("control"), be, eng, index, pins, promReg)
	if err != nil {
		return nil, err
	}
	if node != nil {
		node.Client.SetHeader(controlVersionHeader, ctl.svc.Version)
	}
	defer func() {
		if err != nil { // a later step failed: release the control state
			ctl.Close()
		}
	}()
	authz, ropts, err := security(cfg, log, aopts...)
	if err != nil {
		return nil, err
	}
	if be.azure != nil {
		ropts = append(ropts, registry.WithUnavailable(ops.unavailable))
		// The shared store is checked once it answers (ops.connect), and
		// the signing key loaded from it.
		ops.connected = func(ctx context.Context) error {
			if err := checkPushedRepos(set, index); err != nil {
				return err
			}
			if authz != nil {
				return authz.LoadKey(ctx)
			}
			return nil
		}
	}
	var peer http.Handler
	if node != nil {
		if peer, err = peerSurface(cfg, node, eng, ops, ctl.svc, log); err != nil {
			return nil, err
		}
		ropts = append(ropts, registry.WithPublicRoute(cluster.PeerPrefix+"/", "peer", peer))
	}
	ropts = append(append(ropts, ops.routes()...), // /admin/pins before /admin/
		registry.WithRoute("/metrics", "metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{})),
		registry.WithRoute("/admin/", "admin", ctl))
	reg, err := registry.New(eng, log.Named("http"), promReg, ropts...)
	if err != nil {
		return nil, err
	}
	ln, scheme, caFile, tlsCfg, err := listen(cfg, o.ln)
	if err != nil {
		return nil, err
	}
	readHeader, idle := httpTimeouts(cfg)
	hs := &http.Server{
		Handler:           pings(peer, ops.gate(reg)),
		ReadHeaderTimeout: readHeader,
		IdleTimeout:       idle,
		ErrorLog:          zap.NewStdLog(log.Named("http-server")),
	}
	s := &Server{cfg: cfg, log: log, index: index, node: node, engine: eng, http: hs, ln: ln, tlsCfg: tlsCfg, ctl: ctl, scheme: scheme, caFile: caFile, up: up, ops: ops, prom: promReg}
	if be.azure != nil {
		s.spool = be.azure.store
	}
	return s, nil
}

// pings serves the peers' probes (every 2 s from every peer) with peer,
// outside the registry's request log and metrics; everything else, peer
// relays included, with next.
func pings(peer, next http.Handler) http.Handler {
	if peer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == cluster.PingPath {
			peer.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AddListener makes the server answer on ln too (a TCP listener, wrapped in
// TLS like the main one), as the lab does on the address its nodes' network
// namespaces route to. Call it before Serve; the server takes ln over.
func (s *Server) AddListener(ln net.Listener) {
	if s.tlsCfg != nil {
		ln = tls.NewListener(ln, s.tlsCfg)
	}
	s.extra = append(s.extra, ln)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL: http:// or https:// and its address.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr() }

// Metrics is what /metrics serves.
func (s *Server) Metrics() prometheus.Gatherer { return s.prom }

// CAFile is the CA certificate nodes must trust with tls.auto, else "".
func (s *Server) CAFile() string { return s.caFile }

// Serve answers until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight responses finish within a deadline, stops the
// collector, waits for running fills within the same deadline, and closes
// the index.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2+len(s.extra))
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	s.ops.start(opsCtx, errc)
	for _, ln := range append([]net.Listener{s.ln}, s.extra...) {
		go func() { errc <- s.http.Serve(ln) }()
	}
	go func() {
		// The control module pins and reconciles in the store: once it is
		// checked (or, shared, reachable).
		select {
		case <-s.ops.readyCh:
			s.ctl.start(ctx, s.Addr())
		case <-opsCtx.Done():
		}
	}()
	nodeDone := make(chan struct{})
	if s.node != nil {
		go func() {
			defer close(nodeDone)
			s.node.Run(opsCtx)
		}()
	} else {
		close(nodeDone)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	if s.node != nil {
		// Peers stop routing to this replica at their next probe.
		s.node.Members.SetReady(false)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("shutdown: in-flight requests cut", zap.Error(err))
	}
	s.shutdownOps(sctx, stopOps)
	if s.spool != nil {
		s.spool.Close() // downloads still moving a blob into the spool
	}
	<-nodeDone
	if err := s.ctl.Close(); err != nil {
		s.log.Warn("shutdown: control state", zap.Error(err))
	}
	if err := s.index.Close(); err != nil {
		return err
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// Close releases a server that will not Serve: the listener and the index.
func (s *Server) Close() error {
	s.ln.Close()
	for _, ln := range s.extra {
		ln.Close()
	}
	s.ctl.Close()
	return s.index.Close()
}

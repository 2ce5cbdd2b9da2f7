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
	"path/filepath"
	"time"

	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/upstream"
	"github.com/airlock/airlock/upstream/ociclient"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Server is a running registry cache: store, index, engine and listener.
type Server struct {
	cfg    *config.Config
	log    *zap.Logger
	index  *badgermeta.Index
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

// credentialSets resolves every credential set's secret.
func credentialSets(cfg *config.Config) (map[string]upstream.Credentials, error) {
	out := map[string]upstream.Credentials{}
	for _, cs := range cfg.CredentialSets {
		pw, err := cs.Secret()
		if err != nil {
			return nil, err
		}
		out[cs.Name] = upstream.Credentials{Username: cs.Username, Password: pw}
	}
	return out, nil
}

// Option is an optional setting of New.
type Option func(*options)

type options struct {
	ln net.Listener
}

// WithListener makes the server answer on ln (a TCP listener, wrapped in
// TLS when the configuration asks for it) instead of binding cfg.Listen. A
// caller that binds first fails before any state is opened when the address
// is taken. New takes ln over: it is closed on failure and by Close.
func WithListener(ln net.Listener) Option { return func(o *options) { o.ln = ln } }

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
	creds, err := credentialSets(cfg)
	if err != nil {
		return nil, err
	}
	promReg := newMetricsRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := fsstore.New(filepath.Join(cfg.Storage.Dir, "content"))
	if err != nil {
		return nil, err
	}
	up, err := ociclient.New(endpoints(cfg), log.Named("upstream"), promReg)
	if err != nil {
		return nil, err
	}
	index, err := badgermeta.Open(filepath.Join(cfg.Storage.Dir, "meta"), log, badgermeta.Options{})
	if err != nil {
		return nil, err
	}
	if err := checkPushedRepos(set, index); err != nil {
		index.Close()
		return nil, err
	}
	ops, err := newOps(cfg, store, index, log, promReg)
	if err != nil {
		index.Close()
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
	opts = append(opts, pushEngineOptions(cfg)...)
	eng, err := engine.New(ops.col.Store(), index, up, log.Named("cache"), promReg, opts...)
	if err != nil {
		index.Close()
		return nil, err
	}
	ops.busy = eng.Filling
	eng.SetRules(set, creds)
	ctl, err := openControl(cfg, log.Named("control"), eng, index, ops.col, promReg)
	if err != nil {
		index.Close()
		return nil, err
	}
	defer func() {
		if err != nil { // a later step failed: release the control state
			ctl.Close()
		}
	}()
	ropts, err := securityOptions(cfg, log)
	if err != nil {
		index.Close()
		return nil, err
	}
	ropts = append(append(ropts, ops.routes()...), // /admin/pins before /admin/
		registry.WithRoute("/metrics", "metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{})),
		registry.WithRoute("/admin/", "admin", ctl))
	reg, err := registry.New(eng, log.Named("http"), promReg, ropts...)
	if err != nil {
		index.Close()
		return nil, err
	}
	ln, scheme, caFile, tlsCfg, err := listen(cfg, o.ln)
	if err != nil {
		index.Close()
		return nil, err
	}
	readHeader, idle := httpTimeouts(cfg)
	hs := &http.Server{
		Handler:           ops.gate(reg),
		ReadHeaderTimeout: readHeader,
		IdleTimeout:       idle,
		ErrorLog:          zap.NewStdLog(log.Named("http-server")),
	}
	return &Server{cfg: cfg, log: log, index: index, engine: eng, http: hs, ln: ln, tlsCfg: tlsCfg, ctl: ctl, scheme: scheme, caFile: caFile, up: up, ops: ops, prom: promReg}, nil
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
	s.ctl.start(ctx, s.Addr())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("shutdown: in-flight requests cut", zap.Error(err))
	}
	s.shutdownOps(sctx, stopOps)
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

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/azstate"
	"github.com/airlock/airlock/deploy/badgerstore"
	"github.com/airlock/airlock/storage/azure"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// control is the control module inside serve: its state (in
// <storage>/control, or on Azure in the container the replicas share), the
// service bound to this process's engine, the admin API (mounted at
// /admin/), the reconcile loop and, shared, the loop that serves what
// another replica saved.
type control struct {
	closeStore func() error
	svc        *deploy.Service
	api        http.Handler
	interval   time.Duration
	// followListener: no control.advertise, so the private endpoint
	// address is wherever the listener ends up.
	followListener bool

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	closed bool // start does nothing after Close
}

// controlBinding is the binding serve uses: the configured registry, at
// the advertised (or listen) address, with the file's rules as the base.
func controlBinding(cfg *config.Config) (deploy.Binding, error) {
	set, err := cfg.RuleSet()
	if err != nil {
		return deploy.Binding{}, err
	}
	creds, err := cfg.Credentials()
	if err != nil {
		return deploy.Binding{}, err
	}
	addr, scheme, err := cfg.Control.Endpoint(cfg.Listen)
	if err != nil {
		return deploy.Binding{}, err
	}
	return deploy.Binding{
		Registry: cfg.Control.RegistryName(), Region: cfg.Control.RegionName(), Address: addr, Scheme: scheme,
		BaseRules: set.Rules(), BaseCredentials: creds,
	}, nil
}

// controlState opens where the control state lives: badger under
// <storage>/control, or (ctr not nil) control/state.json in the shared
// container, which contacts nothing yet (the state is loaded by the first
// refresh once the store answers: deploy.WithDeferredLoad).
func controlState(cfg *config.Config, log *zap.Logger, ctr *azure.Container) (deploy.Store, func() error, []deploy.Option, error) {
	if ctr != nil {
		return azstate.New(ctr, log), func() error { return nil }, []deploy.Option{deploy.WithDeferredLoad()}, nil
	}
	store, err := badgerstore.Open(filepath.Join(cfg.Storage.Dir, "control"), log, badgerstore.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	return store, store.Close, nil, nil
}

// openControl opens the control state and binds it to the engine (rs), the
// index (repos) and the collector (pins: clusters' bootstrap images are
// never evicted), serving the bound registry's rules at once. On Azure
// (be.azure) the state is the replicas' shared one, and with a cluster a
// managed private endpoint at another live replica stays there.
func openControl(cfg *config.Config, log *zap.Logger, be *backend, rs deploy.RuleSetter, repos deploy.RepoLister, pins deploy.Pinner, reg prometheus.Registerer) (*control, error) {
	b, err := controlBinding(cfg)
	if err != nil {
		return nil, err
	}
	b.Rules, b.Repos, b.Pins = rs, repos, pins
	var ctr *azure.Container
	if be.azure != nil {
		ctr = be.azure.ctr
		if node := be.azure.node; node != nil {
			self := node.Members.Self()
			b.Replica = func(addr string) bool { return addr != self && node.Members.IsLive(addr) }
		}
	}
	store, closeStore, opts, err := controlState(cfg, log, ctr)
	if err != nil {
		return nil, err
	}
	svc, err := deploy.New(context.Background(), store, b, log, reg, opts...)
	if err != nil {
		closeStore()
		if errors.Is(err, deploy.ErrInvalid) || errors.Is(err, deploy.ErrConflict) {
			// The file's rules conflict with the stored ones.
			return nil, &config.Error{Msg: "control: " + err.Error()}
		}
		return nil, err
	}
	if host, _, _ := net.SplitHostPort(b.Address); host == "" || net.ParseIP(host).IsUnspecified() {
		log.Warn("control.advertise is not set: nodes cannot reach the private endpoint at the listen address",
			zap.String("address", b.Address), zap.String("registry", b.Registry))
	}
	return &control{
		closeStore: closeStore, svc: svc, api: adminapi.New(svc, log), interval: cfg.Control.Interval(),
		followListener: cfg.Control.Advertise == "",
	}, nil
}

// readyPins syncs the control module's pins (clusters' bootstrap images)
// only while the server is ready: a replica on Azure starts before its
// storage answers, and loses it in an outage. A sync while it is not
// ready fails (deploy.ErrPinsNotReady), so that the control module syncs again at
// its next refresh (deploy.Service.Follow) rather than take the pins of
// the state it serves for synced.
type readyPins struct {
	deploy.Pinner
	ready *atomic.Bool
}

func (p readyPins) SyncPins(prefix string, want map[string][]string) error {
	if !p.ready.Load() {
		return deploy.ErrPinsNotReady
	}
	return p.Pinner.SyncPins(prefix, want)
}

// Control is the control module of a server built by newServer: the Go
// API (CreateCluster, NodeConfig, ...) for in-process callers such as the
// lab. Without control.advertise, the served registry's private endpoint
// is the listener's address.
func (s *Server) Control() *deploy.Service {
	if s.ctl.followListener {
		s.ctl.svc.SetAddress(s.Addr())
	}
	return s.ctl.svc
}

// ServeHTTP serves the admin API.
func (c *control) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.api.ServeHTTP(w, r) }

// start runs the reconcile loop, and the loop that serves a state another
// process saved (deploy.Service.Follow, within deploy.DefaultRefreshInterval),
// until ctx ends or Close (after Close it does nothing); addr is the
// listener's address.
func (c *control) start(ctx context.Context, addr string) {
	if c.followListener {
		c.svc.SetAddress(addr)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var loops sync.WaitGroup
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cancel()
		return
	}
	c.cancel, c.done = cancel, done
	loops.Go(func() { c.svc.Follow(ctx, deploy.DefaultRefreshInterval) })
	loops.Go(func() { c.svc.Run(ctx, c.interval) })
	go func() {
		loops.Wait()
		close(done)
	}()
}

// Close stops the loop and closes the state.
func (c *control) Close() error {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.closed = true
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return c.closeStore()
}

// OpenLocal opens a stopped server's control state in this process, for
// the CLI's --config/--dir mode. Pushed repositories are read from the
// index when there is one. On Azure the state is the replicas' shared one,
// which running replicas may change too: every change is conditional on
// the version read, so none is lost, and they serve it within
// deploy.DefaultRefreshInterval.
func OpenLocal(ctx context.Context, cfg *config.Config, log *zap.Logger) (*adminapi.Client, func(), error) {
	b, err := controlBinding(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Storage.AzureDriver() {
		return openLocalAzure(ctx, cfg, b, log)
	}
	var index *badgermeta.Index
	if _, err := os.Stat(filepath.Join(cfg.Storage.Dir, "meta")); err == nil {
		if index, err = badgermeta.Open(filepath.Join(cfg.Storage.Dir, "meta"), log, badgermeta.Options{}); err != nil {
			return nil, nil, errors.New("cache index in use: " + err.Error() + " (is airlock serve running? use --server)")
		}
		b.Repos = index
	}
	store, closeStore, _, err := controlState(cfg, log, nil)
	if err != nil {
		if index != nil {
			index.Close()
		}
		return nil, nil, err
	}
	closeAll := func() {
		closeStore()
		if index != nil {
			index.Close()
		}
	}
	svc, err := deploy.New(ctx, store, b, log, nil)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return adminapi.Local(adminapi.New(svc, log)), closeAll, nil
}

// openLocalAzure is OpenLocal on the container storage.azure names: the
// control state and the index there.
func openLocalAzure(ctx context.Context, cfg *config.Config, b deploy.Binding, log *zap.Logger) (*adminapi.Client, func(), error) {
	ctr, err := azure.New(cfg.Storage.AzureContainer())
	if err != nil {
		return nil, nil, &config.Error{Msg: "config: storage.azure: " + err.Error()}
	}
	index, err := azmeta.New(ctx, ctr, log.Named("meta"), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("cache index on Azure: %w", err)
	}
	b.Repos = index
	store, _, _, err := controlState(cfg, log, ctr)
	if err != nil {
		index.Close()
		return nil, nil, err
	}
	svc, err := deploy.New(ctx, store, b, log, nil)
	if err != nil {
		index.Close()
		return nil, nil, err
	}
	return adminapi.Local(adminapi.New(svc, log)), func() { index.Close() }, nil
}

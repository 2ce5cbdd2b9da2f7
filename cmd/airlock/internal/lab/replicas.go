package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/azurite"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// MaxReplicas bounds Options.Replicas.
const MaxReplicas = 5

// replicas are the lab's airlock replicas beyond the first (airlock lab
// --replicas N): every one serves on its own port (the first's, plus one
// each), all on one container of an Azurite the lab runs, in one cluster.
// Each replica's control module provisions the lab's cluster as the
// first's does, so that all serve its rule and pin its bootstrap images
// alike.
type replicas struct {
	az    *azurite.Process
	addrs []string         // every replica's address, the first's first
	lns   []net.Listener   // replicas 2..N's, bound before anything starts
	srvs  []*server.Server // replicas 2..N, once built
	dirs  []string         // replicas 2..N's storage.dir
	data  string           // Azurite's data
	log   *zap.Logger
}

// reserveReplicas binds the addresses of replicas 2..n beside the first's
// (ln) and starts Azurite, its data in dir/azurite. What it started is
// stopped by rollback if the lab's start fails later.
func reserveReplicas(ctx context.Context, o Options, ln net.Listener, logOut io.Writer, log *zap.Logger, rollback *undo) (*replicas, error) {
	r := &replicas{addrs: []string{ln.Addr().String()}, log: log}
	host, port, _ := net.SplitHostPort(o.Listen)
	first, _ := strconv.Atoi(port)
	for i := 2; i <= o.Replicas; i++ {
		addr := net.JoinHostPort(host, "0")
		if first != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(first+i-1))
		}
		rl, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, listenError(fmt.Sprintf("--replicas %d: replica %d's address", o.Replicas, i), addr, err)
		}
		rollback.push(func() { rl.Close() })
		r.lns = append(r.lns, rl)
		r.addrs = append(r.addrs, rl.Addr().String())
		r.dirs = append(r.dirs, filepath.Join(o.Dir, "replicas", fmt.Sprintf("airlock-%d", i)))
	}
	r.data = filepath.Join(o.Dir, "azurite")
	az, err := startAzurite(r.data, logOut)
	if err != nil {
		return nil, fmt.Errorf("--replicas %d: %w", o.Replicas, err)
	}
	rollback.push(az.Stop)
	r.az = az
	// The container exists before the replicas' control modules pin the
	// cluster's images in it (they provision before serving).
	if _, err := azure.Open(ctx, r.azureConfig()); err != nil {
		return nil, fmt.Errorf("--replicas %d: azurite: %w", o.Replicas, err)
	}
	return r, nil
}

// azureConfig is the replicas' storage.azure.
func (r *replicas) azureConfig() azure.Config {
	return azure.Config{ServiceURL: r.az.ServiceURL(), AccountName: azurite.AccountName, AccountKey: azurite.AccountKey, Container: config.DefaultContainer}
}

// configure makes cfg replica i's (from 1): on Azurite's container
// "airlock", one of the cluster of every replica.
func (r *replicas) configure(cfg *config.Config, i int) {
	cfg.Listen = r.addrs[i-1]
	cfg.Storage.Driver = config.DriverAzure
	ac := r.azureConfig()
	cfg.Storage.Azure = &ac
	cfg.Cluster = cluster.Config{Self: r.addrs[i-1], Peers: r.addrs}
}

// start builds replicas 2..N like the first (base), each provisioning the
// lab's cluster in its control module.
func (r *replicas) start(ctx context.Context, base *config.Config, rollback *undo) error {
	for i, ln := range r.lns {
		cfg := *base
		cfg.Storage.Dir = r.dirs[i]
		r.configure(&cfg, i+2)
		if err := cfg.Validate(); err != nil {
			return err
		}
		srv, err := server.New(&cfg, r.log.Named(fmt.Sprintf("airlock-%d", i+2)), server.WithListener(ln))
		if err != nil {
			return fmt.Errorf("replica %d: %w", i+2, err)
		}
		rollback.push(func() { srv.Close() })
		r.srvs = append(r.srvs, srv)
		ctl := srv.Control()
		switch _, err := ctl.CreateCluster(ctx, labClusterSpec); {
		case err == nil:
			rollback.push(func() { ctl.DeleteCluster(context.WithoutCancel(ctx), labCluster) })
		case !errors.Is(err, deploy.ErrConflict):
			return fmt.Errorf("replica %d: create cluster %s: %w", i+2, labCluster, err)
		}
		if _, err := ctl.Reconcile(ctx, labCluster); err != nil {
			return fmt.Errorf("replica %d: reconcile cluster %s: %w", i+2, labCluster, err)
		}
	}
	return nil
}

// serve runs replicas 2..N until ctx ends; the channel gets their errors
// joined once all stopped.
func (r *replicas) serve(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	errs := make(chan error, len(r.srvs))
	for _, s := range r.srvs {
		go func() { errs <- s.Serve(ctx) }()
	}
	go func() {
		var all []error
		for range r.srvs {
			all = append(all, <-errs)
		}
		out <- errors.Join(all...)
	}()
	return out
}

// ready waits until replicas 2..N are ready, or ctx ends.
func (r *replicas) ready(ctx context.Context) error {
	for _, s := range r.srvs {
		select {
		case <-s.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// describe lists the replicas for the lab's instructions.
func (r *replicas) describe(w io.Writer) {
	urls := make([]string, len(r.addrs))
	for i, a := range r.addrs {
		urls[i] = "http://" + a
	}
	fmt.Fprintf(w, `
%d replicas, one cluster, all serving the same registry: %s
  they share Azurite's storage account (%s, container %s; data in %s),
  each fills a blob it owns from the emulator once for all and relays it to the others.
  Pull through any of them, e.g.:
    crane pull --insecure %s/aks-managed-repository/oss/kubernetes/pause:3.10 pause.tar
    curl -s %s/metrics | grep airlock_cluster_
`, len(r.addrs), strings.Join(urls, " "), r.az.ServiceURL(), config.DefaultContainer, r.data,
		r.addrs[len(r.addrs)-1], urls[len(urls)-1])
}

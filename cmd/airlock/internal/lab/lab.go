// Package lab runs the whole product on one machine (airlock lab, make
// run): the MAR emulator, airlock in front of it as the AKS-managed
// registry of a network-isolated cluster "lab", and that cluster's node
// configuration.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/logging"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/progress"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure a lab.
type Options struct {
	Dir       string // state: airlock store, control state, generated catalog, node config
	Listen    string // airlock's address
	MarListen string // the emulator's address
	Scale     catalog.Scale
	Seed      uint64
	LogLevel  zapcore.Level
	Nodes     int // emulated AKS nodes (containerd daemons; root)
	Replicas  int // airlock replicas on Azurite (replicas.go); 0 or 1: one, on the filesystem
}

// MaxNodes bounds Options.Nodes: each node is a containerd daemon.
const MaxNodes = 16

// Lab is a running MAR emulator with airlock in front of it.
type Lab struct {
	mar     *mar.Server
	srv     *server.Server
	dir     string
	nodeDir string    // what the node configuration writes, AKS-style
	hosts   string    // certs.d/mcr.microsoft.com/hosts.toml
	nodes   *nodes    // nil: none
	reps    *replicas // nil: one replica
	log     *zap.Logger
}

// undo is what a failed Start takes back, last first.
type undo []func()

func (u *undo) push(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// Start starts the emulator and the registry, provisions the lab's
// cluster and starts its nodes; Serve runs the registry. Logs go to
// logOut. A failed start leaves nothing half-made: what it started is
// stopped, and a cluster it created is deleted.
func Start(ctx context.Context, o Options, logOut io.Writer) (_ *Lab, err error) {
	if o.Nodes < 0 || o.Nodes > MaxNodes {
		return nil, fmt.Errorf("--nodes %d: want 0 to %d", o.Nodes, MaxNodes)
	}
	if o.Replicas < 0 || o.Replicas > MaxReplicas {
		return nil, fmt.Errorf("--replicas %d: want 1 to %d", o.Replicas, MaxReplicas)
	}
	log := logging.Console(logOut, o.LogLevel)
	// Paths are resolved where the user typed them: the node configuration
	// needs absolute paths (containerd's config_path, hosts.toml's ca).
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("--dir %q: %w", o.Dir, err)
	}
	o.Dir = dir
	var rollback undo
	defer func() {
		if err != nil {
			rollback.run()
		}
	}()
	// The registry's address first: taken, the lab stops before it has
	// generated, opened or created anything.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, listenError("--listen", o.Listen, err)
	}
	rollback.push(func() { ln.Close() }) // once the server owns it, a second Close is a no-op
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var reps *replicas
	if o.Replicas > 1 {
		if reps, err = reserveReplicas(ctx, o, ln, logOut, log, &rollback); err != nil {
			return nil, err
		}
	}
	// Generating the full catalog takes seconds the first time: show it.
	gen := progress.NewTask(logOut, fmt.Sprintf("generating the emulator's %s catalog", o.Scale))
	m, err := mar.New(mar.Config{
		Listen: o.MarListen, DataListen: "127.0.0.1:0", Catalog: catalog.NameAKS,
		Scale: o.Scale, Seed: o.Seed, CacheDir: filepath.Join(o.Dir, "mar-catalog"),
		Progress: gen.Update,
	}, log.Named("mar"))
	if err != nil {
		return nil, err
	}
	err = m.Start(ctx)
	gen.Close()
	if err != nil {
		return nil, listenError("--mar-listen", o.MarListen, err)
	}
	rollback.push(func() { m.Close() })
	cfg := &config.Config{
		Listen:    ln.Addr().String(),
		Storage:   config.Storage{Dir: filepath.Join(o.Dir, "airlock")},
		Upstreams: []config.Upstream{{Host: "mcr.microsoft.com", Endpoint: m.URL()}},
		// No rules in the file: the lab's cluster creates its AKS-managed
		// registry (this process) with the aks-managed-mcr rule.
		Log: config.Log{Level: o.LogLevel.String(), Format: "console"},
	}
	if reps != nil {
		reps.configure(cfg, 1)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv, err := server.New(cfg, log.Named("airlock"), server.WithListener(ln))
	if err != nil {
		return nil, err
	}
	rollback.push(func() { srv.Close() })
	l := &Lab{mar: m, srv: srv, dir: o.Dir, nodeDir: filepath.Join(o.Dir, "node"), reps: reps, log: log}
	if err := l.provision(ctx, &rollback); err != nil {
		return nil, err
	}
	if reps != nil {
		if err := reps.start(ctx, cfg, &rollback); err != nil {
			return nil, err
		}
	}
	if o.Nodes > 0 {
		if l.nodes, err = startNodes(ctx, l, o.Nodes, logOut); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// listenError says what to do when the lab's address is taken.
func listenError(flag, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: %w: is another lab or airlock running? Stop it, or choose free ports "+
			"(airlock lab --listen 127.0.0.1:5050 --mar-listen 127.0.0.1:6060; make run LAB_FLAGS='--listen 127.0.0.1:5050 --mar-listen 127.0.0.1:6060')",
			flag, addr, syscall.EADDRINUSE)
	}
	if flag == "--listen" {
		return fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	return err
}

// labCluster is the network-isolated cluster the lab provisions.
const labCluster = "lab"

// labClusterSpec is how the lab creates it.
var labClusterSpec = deploy.ClusterSpec{Name: labCluster, NetworkIsolated: true, OutboundType: "none", ArtifactSource: "Cache"}

// provision creates (once; the state persists in the lab's directory) a
// network-isolated cluster whose AKS-managed bootstrap registry is this
// process, and writes the node configuration AKS would: hosts.toml,
// containerd's config_path and the kubelet credential provider config. A
// cluster it creates is deleted by rollback if the start fails later.
func (l *Lab) provision(ctx context.Context, rollback *undo) error {
	ctl := l.srv.Control()
	_, err := ctl.CreateCluster(ctx, labClusterSpec)
	switch {
	case err == nil:
		// A failed start leaves nothing half-made: the next start creates
		// the cluster again from scratch.
		rollback.push(func() {
			if _, err := ctl.DeleteCluster(context.WithoutCancel(ctx), labCluster); err != nil {
				l.log.Error("delete the half-created cluster", zap.String("cluster", labCluster), zap.Error(err))
			}
		})
	case !errors.Is(err, deploy.ErrConflict):
		return fmt.Errorf("create cluster %s: %w", labCluster, err)
	}
	nc, err := l.nodeConfig(ctx)
	if err != nil {
		return err
	}
	if _, err := nc.WriteTo(l.nodeDir); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(l.certsDir(), "mcr.microsoft.com", "hosts.toml"))
	if err != nil {
		return err
	}
	l.hosts = string(b)
	return nil
}

// nodeConfig reconciles the lab's cluster and returns its node configuration.
func (l *Lab) nodeConfig(ctx context.Context) (*deploy.NodeConfig, error) {
	ctl := l.srv.Control()
	if _, err := ctl.Reconcile(ctx, labCluster); err != nil {
		return nil, fmt.Errorf("reconcile cluster %s: %w", labCluster, err)
	}
	return ctl.NodeConfig(ctx, labCluster, deploy.NodeConfigOptions{Scheme: "http", CertsDir: l.certsDir()})
}

func (l *Lab) certsDir() string { return filepath.Join(l.nodeDir, "certs.d") }

// Serve runs until ctx ends, then stops the registry, the nodes and the
// emulator.
func (l *Lab) Serve(ctx context.Context) error {
	var reps <-chan error
	if l.reps != nil {
		reps = l.reps.serve(ctx)
	}
	err := l.srv.Serve(ctx)
	if l.reps != nil {
		err = errors.Join(err, <-reps)
		l.reps.az.Stop()
	}
	if l.nodes != nil {
		if nerr := l.nodes.stop(); nerr != nil {
			err = errors.Join(err, fmt.Errorf("stop the nodes: %w", nerr))
		}
	}
	if cerr := l.mar.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *Lab) instructions(w io.Writer) {
	addr := l.srv.Addr()
	c := l.mar.Catalog()
	fmt.Fprintf(w, `airlock lab is up.

  registry (airlock)   http://%[1]s   AKS-managed registry of cluster %[7]q (network isolated, outbound none)
                       rule aks-managed-mcr: aks-managed-repository/* -> mcr.microsoft.com/*
  upstream (MAR emu)   %[2]s   %[3]d images, %.1[4]f MiB
  metrics              http://%[1]s/metrics    upstream counters: %[2]s/_mar/stats

Node configuration (airlock cluster nodeconfig --name %[7]s) written to %[8]s;
containerd's mirror config %[5]s/mcr.microsoft.com/hosts.toml:

%[6]s
Pull through it:

  crane pull --insecure %[1]s/aks-managed-repository/oss/kubernetes/pause:3.10 pause.tar
  curl -sI http://%[1]s/v2/aks-managed-repository/oss/kubernetes/pause/manifests/3.10
  bin/airlock cluster show --name %[7]s --server http://%[1]s
`, addr, l.mar.URL(), len(c.Images()), float64(c.TotalBlobSize())/(1<<20), l.certsDir(), indent(l.hosts, "  "), labCluster, l.nodeDir)
	if l.reps != nil {
		l.reps.describe(w)
	}
	if l.nodes != nil {
		l.nodes.describe(w)
	} else {
		fmt.Fprintf(w, `  sudo ctr images pull --hosts-dir %s %s   # a containerd running here

Emulated AKS nodes (containerd, each in its own network namespace): sudo make run NODES=2
`, l.certsDir(), pauseImage)
	}
	fmt.Fprint(w, `
(crane: scripts/install-tools.sh crane, or go install github.com/google/go-containerregistry/cmd/crane@v0.22.1;
 ctr and containerd: scripts/install-tools.sh containerd)
Ctrl-C stops the lab.
`)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, ln := range lines {
		lines[i] = prefix + ln
	}
	return strings.Join(lines, "\n") + "\n"
}

// Run is airlock lab: it starts the lab, prints how to use it once it is
// ready, and runs it until ctx ends. Logs and progress go to stderr.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	l, err := Start(ctx, o, stderr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx) }()
	select {
	case <-l.srv.Ready():
		if l.reps != nil && l.reps.ready(ctx) != nil {
			err = <-served
			break
		}
		l.instructions(stdout)
		err = <-served
	case err = <-served:
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "airlock lab: stopped")
	return nil
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
	"github.com/airlock/airlock/deploy"
	"go.uber.org/zap"
)

// The lab's nodes are containerd daemons, each an emulated AKS node of the
// lab's cluster. Where network namespaces are available, the lab makes one
// for the cluster's private endpoint, where airlock also listens (a socket
// made inside it: nothing is added to the host's network), and one per
// node, joined to the private endpoint's by a veth pair: the node's only
// route. The addresses are the cluster's virtual network's (10.224.0.0/16,
// AKS's default), private to these namespaces: every node reaches airlock
// at the private endpoint address, as on AKS.
const (
	netnsPrefix = "airlock-lab-" // namespaces: airlock-lab-<pid>-pe, airlock-lab-<pid>-node<i>
	peRole      = "pe"
	peAddr      = "10.224.0.4" // the private endpoint
	nodeDevice  = "eth0"
	// pauseImage is the image the printed pull commands fetch.
	pauseImage = deploy.MirroredHost + "/oss/kubernetes/pause:3.10"
)

// nodeAddr is node i's address (i from 1).
func nodeAddr(i int) string { return fmt.Sprintf("10.224.0.%d", 4+i) }

// node is one emulated node.
type node struct {
	name    string // node1, node2, ...
	dir     string // its node configuration: <lab dir>/nodes/<name>
	netns   string // its network namespace; "" shares the host's
	airlock string // host:port of airlock as the node reaches it
	ctd     *labnode.Containerd
	logFile *os.File
}

// certsDir is containerd's config_path on the node (ctr --hosts-dir).
func (n *node) certsDir() string { return filepath.Join(n.dir, "certs.d") }

// pullCommand is the command that pulls pauseImage on the node.
func (n *node) pullCommand() string {
	return n.ctd.CtrLine("images", "pull", "--hosts-dir", n.certsDir(), pauseImage)
}

// nodes are the lab's running nodes.
type nodes struct {
	log      *zap.Logger
	stopping chan struct{} // closed by stop
	list     []*node
	runDir   string // containerd roots, states and sockets: removed at stop
	pe       string // the private endpoint's network namespace; "": none, the nodes share the host's network
	notes    []string
}

// nodesMissing says what this machine lacks to run nodes, each with how
// to get it; empty when nodes can run.
func nodesMissing() []string {
	if runtime.GOOS != "linux" {
		return []string{"nodes need Linux"}
	}
	var out []string
	if os.Geteuid() != 0 {
		out = append(out, "root (containerd and network namespaces need it: sudo make run NODES=N)")
	}
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			out = append(out, b+" (install it: scripts/install-tools.sh containerd)")
			break
		}
	}
	return out
}

// startNodes starts n nodes of the lab's cluster, each configured with the
// hosts.toml the control module writes for it. Without root or containerd
// it says what is missing on logOut and returns nil: the lab runs without
// nodes. Without network namespaces the nodes share the host's network.
// On failure nothing is left.
func startNodes(ctx context.Context, l *Lab, n int, logOut io.Writer) (_ *nodes, err error) {
	if missing := nodesMissing(); len(missing) > 0 {
		fmt.Fprintf(logOut, "airlock lab: --nodes %d: no nodes, this needs %s; the lab runs without nodes\n", n, strings.Join(missing, " and "))
		return nil, nil
	}
	ns := &nodes{log: l.log.Named("nodes"), stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, ns.stop())
		}
	}()
	if err := ns.prepare(ctx, l.dir); err != nil {
		return nil, err
	}
	if err := ns.privateEndpoint(ctx, l); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		nd := &node{name: fmt.Sprintf("node%d", i), dir: filepath.Join(l.dir, "nodes", fmt.Sprintf("node%d", i))}
		ns.list = append(ns.list, nd)
		if err := ns.start(ctx, l, nd, i); err != nil {
			return nil, fmt.Errorf("%s: %w", nd.name, err)
		}
	}
	return ns, nil
}

// prepare removes what a crashed earlier lab left: its namespaces (and so
// their veth pairs), its run directories, this directory's old node
// configurations.
func (ns *nodes) prepare(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("ip"); err == nil {
		removed, err := labnode.RemoveStale(ctx, netnsPrefix)
		for _, r := range removed {
			ns.notes = append(ns.notes, "removed network namespace "+r+", left by a lab that crashed")
		}
		if err != nil {
			return err
		}
	}
	if err := removeStaleRunDirs(); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, "nodes")); err != nil {
		return err
	}
	d, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid()))
	if err != nil {
		return err
	}
	ns.runDir = d
	return nil
}

var reRunDir = regexp.MustCompile(`^` + regexp.QuoteMeta(netnsPrefix) + `(\d+)-\d+$`)

// removeStaleRunDirs removes the run directories of labs that are gone.
func removeStaleRunDirs() error {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		m := reRunDir.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || labnode.Running(pid) {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(os.TempDir(), e.Name())))
	}
	return errors.Join(errs...)
}

// privateEndpoint makes the private endpoint's namespace, where airlock
// listens on peAddr (at its own port) for the nodes. Where namespaces
// cannot be made it notes why, and the nodes share the host's network.
func (ns *nodes) privateEndpoint(ctx context.Context, l *Lab) error {
	if _, err := exec.LookPath("ip"); err != nil {
		ns.notes = append(ns.notes, "ip (iproute2) is not on PATH: the nodes share this machine's network (install it: scripts/install-tools.sh ip)")
		return nil
	}
	pe := labnode.NetnsName(netnsPrefix, os.Getpid(), peRole)
	if err := labnode.AddNetns(ctx, pe); err != nil {
		ns.notes = append(ns.notes, "no network namespaces here ("+err.Error()+"): the nodes share this machine's network")
		return nil
	}
	ns.pe = pe
	// The private endpoint's address is on each node's veth end (Linux
	// accepts one address on several interfaces); until the first node
	// comes, it sits on the loopback so that airlock can bind it.
	if _, err := labnode.IP(ctx, "-n", pe, "addr", "add", peAddr+"/32", "dev", "lo"); err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(l.srv.Addr())
	if err != nil {
		return err
	}
	ln, err := labnode.ListenIn(pe, net.JoinHostPort(peAddr, port))
	if err != nil {
		return fmt.Errorf("airlock on the private endpoint: %w", err)
	}
	l.srv.AddListener(ln)
	return nil
}

// start gives node nd (the i-th) its network, its node configuration and
// its containerd.
func (ns *nodes) start(ctx context.Context, l *Lab, nd *node, i int) error {
	opts := deploy.NodeConfigOptions{Scheme: "http", CertsDir: nd.certsDir()}
	if ns.pe != "" {
		nd.netns = labnode.NetnsName(netnsPrefix, os.Getpid(), nd.name)
		if err := labnode.AddNetns(ctx, nd.netns); err != nil {
			nd.netns = ""
			return err
		}
		if err := labnode.Link(ctx,
			labnode.End{NS: ns.pe, Dev: nd.name, Addr: peAddr},
			labnode.End{NS: nd.netns, Dev: nodeDevice, Addr: nodeAddr(i)}); err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(l.srv.Addr())
		nd.airlock = net.JoinHostPort(peAddr, port)
		// No fallback server: the node reaches nothing but airlock, as on
		// a network-isolated AKS node.
	} else {
		nd.airlock = l.srv.Addr()
		// The node shares this machine's network: on a mirror failure
		// containerd falls back to the lab's mcr.microsoft.com, the
		// emulator, never the real one.
		opts.FallbackServer = l.mar.URL()
	}
	opts.RegistryHost = nd.airlock
	nc, err := l.srv.Control().NodeConfig(ctx, labCluster, opts)
	if err != nil {
		return err
	}
	if _, err := nc.WriteTo(nd.dir); err != nil {
		return err
	}
	if nd.logFile, err = os.Create(filepath.Join(nd.dir, "containerd.log")); err != nil {
		return err
	}
	run := filepath.Join(ns.runDir, nd.name)
	nd.ctd, err = labnode.StartContainerd(ctx, labnode.ContainerdConfig{
		Ctr: "ctr", Dir: run, Socket: filepath.Join(run, "containerd.sock"), NS: nd.netns, Output: nd.logFile,
	})
	if err != nil {
		return fmt.Errorf("%w (its log: %s)", err, nd.logFile.Name())
	}
	go ns.watch(nd)
	return nil
}

// watch says when a node's containerd ends before the lab stops it.
func (ns *nodes) watch(nd *node) {
	select {
	case <-nd.ctd.Done():
		ns.log.Warn("a node's containerd exited; the lab goes on without it",
			zap.String("node", nd.name), zap.Error(nd.ctd.Err()), zap.String("log", nd.logFile.Name()))
	case <-ns.stopping:
	}
}

// stop stops every node's containerd, deletes its namespace (the kernel
// removes its veth pair with it) and the run directory. Node
// configurations and containerd logs stay in the lab's directory.
func (ns *nodes) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	close(ns.stopping)
	var errs []error
	for _, nd := range ns.list {
		if nd.ctd != nil {
			errs = append(errs, nd.ctd.Stop(10*time.Second))
		}
		if nd.logFile != nil {
			nd.logFile.Close()
		}
		if nd.netns != "" {
			if err := labnode.DeleteNetns(ctx, nd.netns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ns.pe != "" {
		// The kernel frees it once airlock's listener there is closed.
		if err := labnode.DeleteNetns(ctx, ns.pe); err != nil {
			errs = append(errs, err)
		}
	}
	if ns.runDir != "" {
		errs = append(errs, os.RemoveAll(ns.runDir))
	}
	return errors.Join(errs...)
}

// describe writes how to use the nodes.
func (ns *nodes) describe(w io.Writer) {
	if ns.pe != "" {
		fmt.Fprintf(w, "\nNodes of cluster %q: containerd in a network namespace each, whose only route is airlock's private endpoint (netns %s).\n", labCluster, ns.pe)
	} else {
		fmt.Fprintf(w, "\nNodes of cluster %q: containerd sharing this machine's network.\n", labCluster)
	}
	for _, note := range ns.notes {
		fmt.Fprintf(w, "(%s)\n", note)
	}
	fmt.Fprintln(w, "Pull on each (as root):")
	for _, nd := range ns.list {
		where := "host network"
		if nd.netns != "" {
			where = "netns " + nd.netns
		}
		fmt.Fprintf(w, "\n  %s (%s; airlock at http://%s; node configuration %s):\n    %s\n", nd.name, where, nd.airlock, nd.dir, nd.pullCommand())
	}
}

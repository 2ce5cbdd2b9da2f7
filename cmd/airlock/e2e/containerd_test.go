package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
	"github.com/airlock/airlock/internal/proctest"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// release is a containerd release the nodes run. Debian's 1.6: ctr
// resolves and fetches itself (the client-side resolver), reading hosts.toml
// from --hosts-dir. 2.x (what AKS 1.33+ nodes run): ctr hands the pull to
// the daemon's transfer service with the --hosts-dir path, and the daemon
// reads hosts.toml there and makes the requests; the CRI plugin (kubelet's
// path) hands it its registry.config_path, the directory of nodeconfig's
// v3 snippet, instead. The transfer plugin's own config_path is read by
// nothing in 2.4.2: without a host directory in the request, the daemon
// goes to the registry named in the reference.
type release struct {
	name            string // subtest name
	line            labnode.Release
	containerd, ctr string // tool names (needTool)
	ua              string // the User-Agent its registry client sends starts with it
}

var (
	containerd16 = release{name: "containerd1.6", line: labnode.Containerd1, containerd: "containerd", ctr: "ctr", ua: "containerd/1."}
	containerd2  = release{name: "containerd2", line: labnode.Containerd2, containerd: "containerd2", ctr: "ctr2", ua: "containerd/2."}
	releases     = []release{containerd16, containerd2}
)

func (r release) v2() bool { return r.line == labnode.Containerd2 }

// need ends the test unless the release's binaries are installed.
func (r release) need(t *testing.T) (containerd, ctr string) {
	t.Helper()
	return needTool(t, r.containerd), needTool(t, r.ctr)
}

// eachRelease runs f for each release as a parallel subtest of t, named
// after it, which needs root and the release's binaries; f's context ends
// after limit.
func eachRelease(t *testing.T, limit time.Duration, f func(t *testing.T, ctx context.Context, rel release)) {
	t.Helper()
	needRoot(t)
	for _, rel := range releases {
		t.Run(rel.name, func(t *testing.T) {
			t.Parallel()
			rel.need(t)
			f(t, testContext(t, limit), rel)
		})
	}
}

// localPath starts the MAR emulator (with marArgs) and one airlock, both
// on 127.0.0.1, that airlock bootstrapping as registry, and provisions
// cluster on it (provisionPath): the emulator and the nodes' pull path.
func localPath(t *testing.T, ctx context.Context, registry, cluster string, marArgs ...string) (*marServer, pullPath) {
	t.Helper()
	m := startMar(t, "", "127.0.0.1:0", "127.0.0.1:0", marArgs...)
	a := startAirlock(t, "", "127.0.0.1:0", m.url, "control:\n  registry: "+registry+"\n")
	return m, provisionPath(t, ctx, a, cluster, a)
}

// containerd is a containerd daemon a test started as root
// (labnode.StartContainerd: its own root, state and sockets in a temporary
// directory, the CRI service off) for the node configured by node. It runs
// in a network namespace, and so does ctr: containerd 1.6's ctr makes the
// registry requests itself, containerd 2's daemon makes them.
type containerd struct {
	*labnode.Containerd
	rel  release
	node nodeConfig
	out  *proctest.Buffer // the daemon's log
}

// startContainerd starts a containerd of release rel in namespace ns for
// the node configured by node (fetch tunes containerd 2's transfer
// service), waits until ctr can talk to it, and stops it at cleanup; if
// the test failed, the tail of its log is logged. containerd 2 imports
// nodeconfig's v3 snippet, as AKS's configuration does, and logs JSON at
// debug level: its transfer service logs every registry request and
// response (wire); the snippet's registry config_path must have been
// applied (checkConfigPath).
func startContainerd(t *testing.T, ctx context.Context, rel release, ns string, node nodeConfig, fetch labnode.FetchConfig) *containerd {
	t.Helper()
	bin, ctrBin := rel.need(t)
	if ns != "" {
		needTool(t, "ip")
	}
	out := &proctest.Buffer{}
	cfg := labnode.ContainerdConfig{
		Release: rel.line, Bin: bin, Ctr: ctrBin, Dir: socketDir(t, "e2e-ctd-"), NS: ns, Output: out, Fetch: fetch,
	}
	if rel.v2() {
		cfg.Imports, cfg.LogLevel, cfg.LogJSON = []string{node.v3Snippet()}, "debug", true
	}
	d, err := labnode.StartContainerd(ctx, cfg)
	if err != nil {
		t.Fatalf("%s: %v\n%s", rel.name, err, tail(out.String(), 4000))
	}
	t.Cleanup(func() {
		if err := d.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("%s %s (pid %d):\n%s", rel.name, d.Version(), d.Pid(), tail(out.String(), 6000))
		}
	})
	c := &containerd{Containerd: d, rel: rel, node: node, out: out}
	if rel.v2() {
		c.checkConfigPath(t, ctx)
	}
	return c
}

// ctr runs ctr against this containerd, in its namespace.
func (c *containerd) ctr(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return runCmd(ctx, timeout, nil, c.Ctr(args...)...)
}

func (c *containerd) mustCtr(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := c.ctr(ctx, 2*time.Minute, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pull pulls and unpacks mcr.microsoft.com/<ref> (linux/amd64) through the
// node's hosts.toml, as the node's kubelet would have containerd do. ctr 2
// asks the transfer service for every platform's manifests and configs
// unless told --skip-metadata; the CRI asks only for the node's platform,
// and so does this pull.
func (c *containerd) pull(ctx context.Context, ref string) error {
	args := []string{"images", "pull", "--hosts-dir", c.node.certs, "--platform", "linux/amd64"}
	if c.rel.v2() {
		args = append(args, "--skip-metadata")
	}
	_, err := c.ctr(ctx, 2*time.Minute, append(args, "mcr.microsoft.com/"+ref)...)
	return err
}

// fetch fetches an artifact's content (linux/amd64) without unpacking, with
// ctr's own resolver (in both releases). ctr 1.6 cannot unpack an OCI
// artifact ("mismatched image rootfs and manifest layers"), and containerd
// 2's transfer service records an artifact without fetching its layers; a
// node needs the blobs of the kubelet package, nothing else.
func (c *containerd) fetch(ctx context.Context, ref string) error {
	_, err := c.ctr(ctx, 2*time.Minute, "content", "fetch", "--hosts-dir", c.node.certs, "--platform", "linux/amd64", "mcr.microsoft.com/"+ref)
	return err
}

// content returns the digests in containerd's content store.
func (c *containerd) content(t *testing.T, ctx context.Context) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, d := range strings.Fields(c.mustCtr(t, ctx, "content", "ls", "-q")) {
		out[d] = true
	}
	return out
}

// checkImages checks, for each image, that containerd recorded the
// emulator's digest for the tag, holds every linux/amd64 blob, and — when
// unpack is set — reports the image complete and unpacked.
func (c *containerd) checkImages(t *testing.T, ctx context.Context, imgs []catalog.Image, unpack bool) {
	t.Helper()
	lines := map[string]string{}
	for _, l := range strings.Split(c.mustCtr(t, ctx, "images", "check"), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	content := c.content(t, ctx)
	for _, img := range imgs {
		ref := "mcr.microsoft.com/" + img.Ref().String()
		l, ok := lines[ref]
		if !ok {
			t.Errorf("containerd has no image %s", ref)
			continue
		}
		f := strings.Fields(l)
		if f[2] != img.Digest.String() {
			t.Errorf("%s: containerd stored %s, the emulator serves %s", ref, f[2], img.Digest)
		}
		if unpack && (!strings.Contains(l, " complete (") || f[len(f)-1] != "true") {
			t.Errorf("%s is not complete and unpacked: %s", ref, l)
		}
		pm, blobs := platformBlobs(t, img, "linux/amd64")
		for _, d := range append(blobs, img.Digest, pm) {
			if !content[d.String()] {
				t.Errorf("%s: %s missing from containerd's content store", ref, d)
			}
		}
	}
}

// A real containerd, 1.6 and 2.x, pulls and unpacks through the node
// configuration `airlock cluster nodeconfig` writes (pullScenario).
func TestContainerdPull(t *testing.T) {
	t.Parallel()
	eachRelease(t, 3*time.Minute, func(t *testing.T, ctx context.Context, rel release) {
		m, p := localPath(t, ctx, "e2ebootstrap", "aks1")
		pullScenario(t, ctx, rel, m, p)
	})
}

// pullScenario: a node pulls and unpacks pause (OCI index) and kube-proxy
// (Docker manifest list, 3 layers) through p. What it stored has the
// emulator's digests, every blob was fetched upstream once, other platforms
// not at all; pulled again after `ctr images rm` it costs no upstream
// request at all; a fresh tag of the same image, on a second node, fetches
// upstream only the blobs the first tag did not share. With containerd 2,
// every request the daemons made went to their node's airlock, and the
// airlocks saw exactly those (checkDaemonRequests).
func pullScenario(t *testing.T, ctx context.Context, rel release, m *marServer, p pullPath) {
	t.Helper()
	p.mark()
	imgs := m.images(t, ctx)
	pause, proxy := mustImage(t, imgs, "oss/kubernetes/pause:3.10"), mustImage(t, imgs, "oss/kubernetes/kube-proxy:v1.31.3")
	set := []catalog.Image{pause, proxy}

	c := startContainerd(t, ctx, rel, "", p.node(0), labnode.FetchConfig{})
	for _, img := range set {
		if err := c.pull(ctx, img.Ref().String()); err != nil {
			t.Fatal(err)
		}
	}
	c.checkImages(t, ctx, set, true)
	if snaps := strings.Count(c.mustCtr(t, ctx, "snapshots", "ls"), "Committed"); snaps < 1+3 {
		t.Errorf("%d committed snapshots, want one per layer (4)", snaps)
	}
	st := m.stats(t, ctx)
	for _, img := range set {
		_, blobs := platformBlobs(t, img, "linux/amd64")
		amd64 := map[string]bool{}
		for _, d := range blobs {
			amd64[d.String()] = true
			if n := st.Fetches(d.String()); n != 1 {
				t.Errorf("%s: blob %s fetched upstream %d times, want 1", img.Ref(), d, n)
			}
		}
		for d := range allDigests(img) {
			if !amd64[d] && st.Fetches(d) != 0 {
				t.Errorf("%s: %s (not linux/amd64) was fetched upstream", img.Ref(), d)
			}
		}
	}
	n := p.checkMirrorRequests(t, rel.ua)
	t.Logf("cold pull: %s made %d requests to airlock, all /v2/%s/...?ns=mcr.microsoft.com; upstream: %d requests", rel.name, n, mirrorRepo, st.Total())

	// Removed (containerd's GC drops the content) and pulled again: every
	// byte now comes from airlock's cache; upstream sees nothing (the tags
	// are within their TTL, digests are immutable).
	m.resetStats(t, ctx)
	c.mustCtr(t, ctx, "images", "rm", "--sync", "mcr.microsoft.com/"+pause.Ref().String(), "mcr.microsoft.com/"+proxy.Ref().String())
	content := c.content(t, ctx)
	for _, img := range set {
		_, blobs := platformBlobs(t, img, "linux/amd64")
		for _, d := range blobs {
			if content[d.String()] {
				t.Fatalf("%s still in containerd's content store after images rm --sync", d)
			}
		}
		if err := c.pull(ctx, img.Ref().String()); err != nil {
			t.Fatal(err)
		}
	}
	c.checkImages(t, ctx, set, true)
	if st := m.stats(t, ctx); st.Total() != 0 {
		t.Errorf("pulling again from airlock's cache made %d upstream requests (blob GETs %d), want 0:\n%+v",
			st.Total(), st.Count("GET", mar.KindBlob, "")+st.Count("GET", mar.KindBlobData, ""), st.Requests)
	}

	// A fresh tag of the same image, on a node that has nothing yet: only
	// the layers v1.31.3 did not share go upstream, once.
	m.resetStats(t, ctx)
	next := mustImage(t, imgs, "oss/kubernetes/kube-proxy:v1.32.0")
	c2 := startContainerd(t, ctx, rel, "", p.node(1), labnode.FetchConfig{})
	if err := c2.pull(ctx, next.Ref().String()); err != nil {
		t.Fatal(err)
	}
	c2.checkImages(t, ctx, []catalog.Image{next}, true)
	_, had := platformBlobs(t, proxy, "linux/amd64")
	cached := map[string]bool{}
	for _, d := range had {
		cached[d.String()] = true
	}
	st = m.stats(t, ctx)
	_, blobs := platformBlobs(t, next, "linux/amd64")
	shared := 0
	for _, d := range blobs {
		want := int64(1)
		if cached[d.String()] {
			want, shared = 0, shared+1
		}
		if n := st.Count("GET", mar.KindBlobData, d.String()); n != want {
			t.Errorf("%s: blob %s (cached already: %v) fetched upstream %d times, want %d", next.Ref(), d, cached[d.String()], n, want)
		}
	}
	if shared == 0 {
		t.Errorf("%s shares no blob with %s: the check proves nothing", next.Ref(), proxy.Ref())
	}
	checkDaemonRequests(t, p, c, c2)
	t.Logf("fresh tag %s on a fresh node: %d of %d blobs already in airlock, not fetched upstream", next.Ref(), shared, len(blobs))
}

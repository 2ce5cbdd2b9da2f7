package e2e

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/labnode"
	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/upstream/mar"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// Addresses of the isolated world (documentation ranges: nothing real).
const (
	marAddr  = "198.51.100.1" // the emulator, on the mar–acr link
	acrUp    = "198.51.100.2" // airlock's end of that link
	acrAddr  = "203.0.113.1"  // airlock's private endpoint, on the acr–node link
	nodeAddr = "203.0.113.2"
)

// SPEC §1: a network-isolated node has no egress, yet bootstraps, with
// containerd 1.6 and 2.x. Three namespaces per release: mar (the emulator),
// acr (airlock, routes to mar and to node) and node (containerd, whose only
// route is to airlock's address: the private endpoint). The cluster is
// created with `airlock cluster create --network-isolated` against that
// airlock (advertised on the node link), and the node's hosts.toml comes
// from `cluster nodeconfig` with the fallback server on a closed port. The
// node pulls the whole 1.31 bootstrap set at once: images with
// `ctr images pull` (unpacked; with 2.x the daemon, in the node's
// namespace, makes those requests), the kubelet and binary packages — OCI
// artifacts — with `ctr content fetch`. A direct request from node to the emulator fails with
// "network is unreachable", and the emulator's counters show every blob
// fetched once, however many images share it; a second node pulling the
// same set adds no upstream fetch.
func TestZeroEgress(t *testing.T) {
	t.Parallel()
	needRoot(t)
	needTool(t, "ip")
	removeStaleNamespaces(t, t.Context())
	eachRelease(t, 4*time.Minute, zeroEgress)
}

func zeroEgress(t *testing.T, ctx context.Context, rel release) {
	// Namespace names are per release: both subtests run at once.
	tag := strings.NewReplacer("containerd", "", ".", "").Replace(rel.name)
	marNS, acrNS, nodeNS := newNetns(t, ctx, "mar"+tag), newNetns(t, ctx, "acr"+tag), newNetns(t, ctx, "node"+tag)
	veth(t, ctx, marNS, "mar", marAddr, acrNS, "acr", acrUp)
	veth(t, ctx, acrNS, "acr", acrAddr, nodeNS, "node", nodeAddr)
	routes := strings.TrimSpace(ip(t, ctx, "-n", nodeNS, "-4", "route", "show"))
	if want := acrAddr + " dev to-acr scope link src " + nodeAddr; routes != want {
		t.Fatalf("node's routes are not just airlock's address:\n%s\nwant %s", routes, want)
	}
	if r6 := strings.TrimSpace(ip(t, ctx, "-n", nodeNS, "-6", "route", "show")); r6 != "" {
		t.Fatalf("node has IPv6 routes:\n%s", r6)
	}

	m := startMar(t, marNS, marAddr+":6000", marAddr+":6001")
	a := startAirlock(t, acrNS, acrAddr+":5000", m.url,
		"control:\n  registry: nodebootstrap\n  advertise: "+acrAddr+":5000\n")
	p := provisionPath(t, ctx, a, "isolated", a)

	// No egress: the node reaches airlock and nothing else.
	for _, u := range []string{m.url + "/v2/", "http://" + m.data + "/"} {
		_, err := nsHTTP(ctx, nodeNS, http.MethodGet, u)
		if err == nil || !strings.Contains(err.Error(), "network is unreachable") {
			t.Fatalf("node → emulator %s: %v, want network is unreachable", u, err)
		}
		t.Logf("node → emulator %s: network is unreachable", u)
	}
	if _, err := nsHTTP(ctx, nodeNS, http.MethodGet, a.url+"/v2/"); err != nil {
		t.Fatalf("node → airlock: %v", err)
	}

	imgs := m.images(t, ctx)
	refs, err := aks.Bootstrap("1.31")
	if err != nil {
		t.Fatal(err)
	}
	var images, artifacts []catalog.Image
	for _, r := range refs {
		img := mustImage(t, imgs, r.String())
		if img.ArtifactType != "" {
			artifacts = append(artifacts, img)
		} else {
			images = append(images, img)
		}
	}
	m.resetStats(t, ctx)

	node := startContainerd(t, ctx, rel, nodeNS, p.node(0), labnode.FetchConfig{})
	t0 := time.Now()
	bootstrap(t, ctx, node, images, artifacts)
	cold := time.Since(t0)
	node.checkImages(t, ctx, images, true)
	node.checkImages(t, ctx, artifacts, false)

	// Every blob of the set went upstream exactly once; nothing else did.
	users := map[string][]string{} // blob → images using it
	for _, img := range append(images, artifacts...) {
		_, blobs := platformBlobs(t, img, "linux/amd64")
		for _, d := range blobs {
			users[d.String()] = append(users[d.String()], img.Ref().String())
		}
	}
	check := func(when string) {
		t.Helper()
		st := m.stats(t, ctx)
		for d, us := range users {
			if n := st.Count("GET", mar.KindBlobData, d); n != 1 {
				t.Errorf("%s: blob %s (used by %v) fetched upstream %d times, want 1", when, d, us, n)
			}
		}
		for _, b := range allBlobs(imgs) {
			if users[b] == nil && st.Count("", mar.KindBlobData, b) != 0 {
				t.Errorf("%s: blob %s, not in the bootstrap set, went upstream", when, b)
			}
		}
	}
	check("first node")
	shared := sharedBlobs(users)
	if len(shared) == 0 {
		t.Fatal("no blob is shared by two images of the set: the check proves nothing")
	}

	// A second node (its own containerd) bootstraps from airlock's cache.
	node2 := startContainerd(t, ctx, rel, nodeNS, p.node(1), labnode.FetchConfig{})
	t1 := time.Now()
	bootstrap(t, ctx, node2, images, artifacts)
	warm := time.Since(t1)
	node2.checkImages(t, ctx, images, true)
	check("second node")
	n := p.checkMirrorRequests(t, rel.ua)
	if rel.v2() { // ctr fetched the artifacts itself: only the routes are the daemons'
		checkDaemonRoutes(t, node, node2)
	}
	t.Logf("%s node bootstrapped %d images and %d artifacts through airlock at %s in %v (second node %v); %d requests from both nodes, all /v2/%s/...?ns=mcr.microsoft.com; %d blobs each fetched upstream once, %d of them shared by 2 or more images: %s",
		rel.name, len(images), len(artifacts), acrAddr, cold.Round(time.Millisecond), warm.Round(time.Millisecond), n, mirrorRepo, len(users), len(shared), strings.Join(shared, "; "))
}

// bootstrap pulls every image and fetches every artifact at once, as a node
// starting its kubelet, CNI and kube-proxy would.
func bootstrap(t *testing.T, ctx context.Context, c *containerd, images, artifacts []catalog.Image) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(images)+len(artifacts))
	for _, img := range images {
		wg.Go(func() { errs <- c.pull(ctx, img.Ref().String()) })
	}
	for _, img := range artifacts {
		wg.Go(func() { errs <- c.fetch(ctx, img.Ref().String()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// allBlobs lists every config and layer digest of the catalog.
func allBlobs(imgs map[string]catalog.Image) []string {
	seen := map[string]bool{}
	for _, img := range imgs {
		for _, pm := range img.Platforms {
			seen[pm.Config.Digest.String()] = true
			for _, l := range pm.Layers {
				seen[l.Digest.String()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	return out
}

// sharedBlobs describes the blobs used by more than one image.
func sharedBlobs(users map[string][]string) []string {
	var out []string
	for d, us := range users {
		if len(us) > 1 {
			out = append(out, d[:19]+"… by "+strings.Join(us, ", "))
		}
	}
	sort.Strings(out)
	return out
}

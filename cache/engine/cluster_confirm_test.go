package engine_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/upstream/upstreamtest"
	"github.com/opencontainers/go-digest"
)

// Repositories of the AKS rule beside repo: the fake upstream has a blob
// only in the repositories it was put in.
const (
	otherRepo = "aks-managed-repository/oss/other"
	proxyRepo = "aks-managed-repository/oss/kubernetes/kube-proxy"
)

// committedThroughOwner builds replicas a (the owner of every key while
// it lives) and b in front of an upstream that has blob d in upRepo and
// kube-proxy's repository, and fills d for repo through a.
func committedThroughOwner(t *testing.T) (f *upstreamtest.Fake, n *fakeNet, a, b *engine.Engine, d digest.Digest) {
	t.Helper()
	f = upstreamtest.NewFake()
	body := bytes.Repeat([]byte("committed "), 8<<10)
	d = f.PutBlob(upRepo, body)
	f.PutBlob("oss/kubernetes/kube-proxy", body)
	n, a, b, _, _ = replicas(t, f)
	blob, err := a.Blob(context.Background(), repo, d, false)
	if err == nil {
		err = readBlob(blob, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	return f, n, a, b, d
}

// confirmedThrough asks replica b for blob d, committed for repo, for two
// other repositories: the one the upstream lacks it in gets BLOB_UNKNOWN,
// the one it has it in gets the blob; the upstream is asked one HEAD for
// each and no second GET.
func confirmedThrough(t *testing.T, f *upstreamtest.Fake, b *engine.Engine, d digest.Digest) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.Blob(ctx, otherRepo, d, false); !errors.Is(err, cache.ErrBlobUnknown) {
		t.Fatalf("a repository the upstream does not have the blob in: %v, want ErrBlobUnknown", err)
	}
	blob, err := b.Blob(ctx, proxyRepo, d, false)
	if err == nil {
		err = readBlob(blob, d)
	}
	if err != nil {
		t.Fatalf("a repository the upstream has the blob in: %v", err)
	}
	if g, h := f.Count("blob GET"), f.Count("blob HEAD"); g != 1 || h != 2 {
		t.Fatalf("%d upstream GETs and %d HEADs, want 1 (the first fill) and 2 (one confirmation per repository)", g, h)
	}
}

// A blob committed for one repository, asked for another through a
// replica that does not own it: the non-owner relays without asking the
// store, and the owner serves it only once the upstream confirms the other
// repository has it (one HEAD, no GET); where the upstream does not, the
// client gets BLOB_UNKNOWN, never the other repository's bytes.
func TestClusterCrossRepositoryThroughNonOwner(t *testing.T) {
	t.Parallel()
	f, _, _, b, d := committedThroughOwner(t)
	confirmedThrough(t, f, b, d)
}

// A fill that finds the blob committed when it claims the fill record (the
// owner it was going to relay from left meanwhile, and the blob was
// committed for another repository) asks the upstream before it serves the
// store's bytes: nobody asked the store for this request before the fill.
func TestClusterClaimFindsCommittedConfirms(t *testing.T) {
	t.Parallel()
	f, n, a, b, d := committedThroughOwner(t)
	ctx := context.Background()
	if err := a.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	// b's view of the membership changes between its miss (a owns the
	// digest) and its fill (b does): a left in between.
	var mu sync.Mutex
	asked := map[string]int{}
	n.owner = func(key string, _ func(string) bool) string {
		mu.Lock()
		defer mu.Unlock()
		asked[key]++
		if asked[key]%2 == 1 {
			return "a"
		}
		return "b"
	}
	confirmedThrough(t, f, b, d)
	mu.Lock()
	defer mu.Unlock()
	if asked[d.String()] != 4 {
		t.Fatalf("the owner of the digest was asked %d times, want 4 (miss and fill, twice): the test did not take the path it is for", asked[d.String()])
	}
}

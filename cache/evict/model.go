package evict

import (
	"container/heap"
	"context"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/reference"
	"github.com/opencontainers/go-digest"
)

// model is the index as the collector sees it under Index.Exclusive:
// per repository, a graph of manifests (parent index -> child manifests)
// with their tags, and the blob links; globally, how many links need each
// digest.
type model struct {
	repos   map[string]*repoModel
	holders map[digest.Digest]int // links (manifests, their refs, blob links) needing a digest
	stale   []meta.Access         // access records of links that no longer exist
}

type repoModel struct {
	name     string
	nodes    map[digest.Digest]*node
	blobs    map[digest.Digest]*blobLink
	blobRefs map[digest.Digest]int // how many present manifests refer to a digest that is not a manifest here
	removal  meta.Removal
}

type node struct {
	repo      *repoModel
	d         digest.Digest
	rec       meta.Manifest
	children  []*node
	parents   int
	tags      []string
	pinned    bool
	removed   bool
	access    time.Time // its own last use
	closure   time.Time // last use of it or anything it needs; zero until computed
	closureOK bool
}

type blobLink struct {
	meta.Blob
	access  time.Time
	removed bool
}

func (n *node) protected() bool { return n.pinned || n.rec.Origin == meta.OriginPush }

// load reads the whole index (tags, manifests, blob links, access times,
// pins) into a model.
func (c *Collector) load(ctx context.Context, p *policy) (*model, error) {
	m := &model{repos: map[string]*repoModel{}, holders: map[digest.Digest]int{}}
	repo := func(name string) *repoModel {
		r, ok := m.repos[name]
		if !ok {
			r = &repoModel{name: name, nodes: map[digest.Digest]*node{}, blobs: map[digest.Digest]*blobLink{}, blobRefs: map[digest.Digest]int{}, removal: meta.Removal{Repo: name}}
			m.repos[name] = r
		}
		return r
	}
	err := c.index.EachManifest(ctx, "", func(l meta.ManifestLink) error {
		r := repo(l.Repo)
		r.nodes[l.Digest] = &node{repo: r, d: l.Digest, rec: l.Manifest, access: l.Added}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = c.index.EachBlob(ctx, "", func(l meta.BlobLink) error {
		repo(l.Repo).blobs[l.Digest] = &blobLink{Blob: l.Blob, access: l.Added}
		m.holders[l.Digest]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	tags := map[string]map[string]digest.Digest{}
	err = c.index.EachTag(ctx, "", func(t meta.TagLink) error {
		if tags[t.Repo] == nil {
			tags[t.Repo] = map[string]digest.Digest{}
		}
		tags[t.Repo][t.Name] = t.Digest
		if n := m.node(t.Repo, t.Digest); n != nil {
			n.tags = append(n.tags, t.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range m.repos {
		for _, n := range r.nodes {
			m.holders[n.d]++
			for _, ref := range n.rec.Refs {
				m.holders[ref]++
				if child, ok := r.nodes[ref]; ok && child != n {
					child.parents++
					n.children = append(n.children, child)
				} else {
					r.blobRefs[ref]++
				}
			}
		}
	}
	err = c.index.EachAccess(ctx, func(a meta.Access) error {
		if n := m.node(a.Repo, a.Digest); n != nil {
			n.access = later(n.access, a.At)
		} else if r, ok := m.repos[a.Repo]; ok && r.blobs[a.Digest] != nil {
			r.blobs[a.Digest].access = later(r.blobs[a.Digest].access, a.At)
		} else {
			m.stale = append(m.stale, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	stored, err := c.index.Pins(ctx)
	if err != nil {
		return nil, err
	}
	pins := append([]reference.Ref(nil), p.pins...)
	for _, sp := range stored {
		if r, err := reference.ParseLocal(sp.Ref); err == nil {
			pins = append(pins, r)
		}
	}
	for _, pin := range pins {
		d := pin.Digest
		if d == "" {
			d = tags[pin.Repo][pin.Tag]
		}
		if n := m.node(pin.Repo, d); n != nil {
			n.pinned = true
		}
	}
	// A manifest's use counts the blobs it needs being read.
	for _, r := range m.repos {
		for _, n := range r.nodes {
			for _, ref := range n.rec.Refs {
				if b := r.blobs[ref]; b != nil {
					n.access = later(n.access, b.access)
				}
			}
		}
	}
	return m, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (m *model) node(repo string, d digest.Digest) *node {
	if r, ok := m.repos[repo]; ok {
		return r.nodes[d]
	}
	return nil
}

// lastUse is the latest use of n or of anything it needs.
func (n *node) lastUse() time.Time {
	if !n.closureOK {
		n.closureOK = true // a manifest cannot (transitively) contain itself; guard anyway
		t := n.access
		for _, c := range n.children {
			if !c.removed {
				t = later(t, c.lastUse())
			}
		}
		n.closure = t
	}
	return n.closure
}

// unit is an eviction candidate: an image (a root manifest: no parent
// manifest in its repository) or a blob linked to a repository that no
// manifest there needs.
type unit struct {
	at   time.Time
	n    *node
	repo *repoModel
	blob digest.Digest
}

type unitHeap []unit

func (h unitHeap) Len() int           { return len(h) }
func (h unitHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h unitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *unitHeap) Push(x any)        { *h = append(*h, x.(unit)) }
func (h *unitHeap) Pop() any {
	old := *h
	u := old[len(old)-1]
	*h = old[:len(old)-1]
	return u
}

// plan is what one eviction decided.
type plan struct {
	images int
	freed  map[digest.Digest]bool // digests no link needs any more
	bytes  int64                  // their size in the store
}

// evict removes the least recently used units from the model until the
// store (used bytes, sizes from the walk) would be at or under target, and
// records the removals in each repository. A unit used at or after
// keepRead stays (zero: any unit may go).
func (m *model) evict(used, target int64, sizes map[digest.Digest]int64, keepRead time.Time) *plan {
	pl := &plan{freed: map[digest.Digest]bool{}}
	var h unitHeap
	for _, r := range m.repos {
		for _, n := range r.nodes {
			if n.parents == 0 && !n.protected() {
				h = append(h, unit{at: n.lastUse(), n: n, repo: r})
			}
		}
		for d, b := range r.blobs {
			if r.blobRefs[d] == 0 && r.nodes[d] == nil && b.Origin != meta.OriginPush {
				h = append(h, unit{at: b.access, repo: r, blob: d})
			}
		}
	}
	heap.Init(&h)
	release := func(d digest.Digest) {
		m.holders[d]--
		if m.holders[d] == 0 {
			if size, ok := sizes[d]; ok {
				pl.freed[d] = true
				pl.bytes += size
			}
		}
	}
	for used-pl.bytes > target && h.Len() > 0 {
		u := heap.Pop(&h).(unit)
		if !keepRead.IsZero() && !u.at.Before(keepRead) {
			break // read within the grace period; so is everything left
		}
		switch {
		case u.n != nil:
			if u.n.removed || u.n.parents > 0 || u.n.protected() {
				continue
			}
			m.removeNode(u.n, release, &h)
		default:
			b := u.repo.blobs[u.blob]
			if b == nil || b.removed {
				continue
			}
			b.removed = true
			u.repo.removal.Blobs = append(u.repo.removal.Blobs, u.blob)
			release(u.blob)
		}
		pl.images++
	}
	return pl
}

// removeNode removes n, its tags, the children only it needed (a tagged
// child becomes an image of its own) and the repository's blob links no
// remaining manifest needs.
func (m *model) removeNode(n *node, release func(digest.Digest), h *unitHeap) {
	r := n.repo
	n.removed = true
	r.removal.Manifests = append(r.removal.Manifests, n.d)
	r.removal.Tags = append(r.removal.Tags, n.tags...)
	release(n.d)
	for _, ref := range n.rec.Refs {
		release(ref)
		if child, ok := r.nodes[ref]; ok && child != n {
			continue
		}
		r.blobRefs[ref]--
		if b := r.blobs[ref]; b != nil && r.blobRefs[ref] == 0 && !b.removed && b.Origin != meta.OriginPush {
			b.removed = true
			r.removal.Blobs = append(r.removal.Blobs, ref)
			release(ref)
		}
	}
	for _, c := range n.children {
		c.parents--
		if c.parents > 0 || c.removed || c.protected() {
			continue
		}
		if len(c.tags) > 0 {
			heap.Push(h, unit{at: c.lastUse(), n: c, repo: r})
			continue
		}
		m.removeNode(c, release, h)
	}
}

// heldBy sums the sizes of the digests that the manifests matching keep
// need (themselves, their child manifests, their blobs), each counted once.
func (m *model) heldBy(keep func(*node) bool, sizes map[digest.Digest]int64) int64 {
	seen := map[digest.Digest]bool{}
	visited := map[*node]bool{}
	var total int64
	add := func(d digest.Digest) {
		if !seen[d] {
			seen[d] = true
			total += sizes[d]
		}
	}
	var walk func(n *node)
	walk = func(n *node) {
		if visited[n] || n.removed {
			return
		}
		visited[n] = true
		add(n.d)
		for _, ref := range n.rec.Refs {
			add(ref)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	for _, r := range m.repos {
		for _, n := range r.nodes {
			if keep(n) {
				walk(n)
			}
		}
	}
	return total
}

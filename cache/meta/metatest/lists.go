package metatest

import (
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/airlock/airlock/cache/meta"
)

// Two owners may pin the same image; dropping one owner's pins keeps the
// other's; unpinning a reference drops it for every owner.
func testPins(t *testing.T, x Index) {
	ps, err := x.Pins(ctx())
	if err != nil || len(ps) != 0 {
		t.Fatalf("pins of an empty index: %v %v", ps, err)
	}
	pause := "aks-managed-repository/oss/kubernetes/pause:3.10"
	proxy := "aks-managed-repository/oss/kubernetes/kube-proxy:v1.31.3"
	team := "team/app@" + dg("app").String()
	must(t, "put pins", x.PutPins(ctx(), []meta.Pin{
		{Ref: pause, Owner: "cluster/b", Added: at(1)},
		{Ref: proxy, Owner: "cluster/a", Added: at(1)},
		{Ref: pause, Owner: "cluster/a", Added: at(1)},
		{Ref: team, Added: at(2)},
	}))
	// The same reference and owner again replaces the pin.
	must(t, "put a pin again", x.PutPins(ctx(), []meta.Pin{{Ref: pause, Owner: "cluster/a", Added: at(3)}}))
	ps, err = x.Pins(ctx())
	same(t, "pins sorted by reference, then owner", ps, err, []meta.Pin{
		{Ref: proxy, Owner: "cluster/a", Added: at(1)},
		{Ref: pause, Owner: "cluster/a", Added: at(3)},
		{Ref: pause, Owner: "cluster/b", Added: at(1)},
		{Ref: team, Added: at(2)},
	})
	if n, err := x.DeletePins(ctx(), nil, "cluster/a"); err != nil || n != 2 {
		t.Fatalf("delete cluster/a: %d %v, want 2", n, err)
	}
	ps, err = x.Pins(ctx())
	same(t, "pins left", ps, err, []meta.Pin{{Ref: pause, Owner: "cluster/b", Added: at(1)}, {Ref: team, Added: at(2)}})
	if n, err := x.DeletePins(ctx(), []string{"nothing:here"}, "cluster/none"); err != nil || n != 0 {
		t.Fatalf("deleting nothing: %d %v", n, err)
	}
	must(t, "pin again", x.PutPins(ctx(), []meta.Pin{{Ref: pause, Owner: "cluster/c", Added: at(4)}}))
	if n, err := x.DeletePins(ctx(), []string{pause, team}, ""); err != nil || n != 3 {
		t.Fatalf("unpin by reference removed %d (%v), want 3 (two owners and an owner-less pin)", n, err)
	}
	if ps, err := x.Pins(ctx()); err != nil || len(ps) != 0 {
		t.Fatalf("pins after unpinning all: %+v %v", ps, err)
	}
}

// Access times are replaced per repository and digest, listed all, and
// deleted by record.
func testAccess(t *testing.T, x Index) {
	d1, d2 := dg("one"), dg("two")
	must(t, "put", x.PutAccess(ctx(), []meta.Access{
		{Repo: "r", Digest: d1, At: at(1)},
		{Repo: "r", Digest: d2, At: at(1)},
		{Repo: "s", Digest: d1, At: at(2)},
	}))
	must(t, "put newer", x.PutAccess(ctx(), []meta.Access{{Repo: "r", Digest: d1, At: at(5)}}))
	must(t, "put none", x.PutAccess(ctx(), nil))
	all := eachAccess(t, x)
	same(t, "access records", all, nil, sortAccess([]meta.Access{
		{Repo: "r", Digest: d1, At: at(5)},
		{Repo: "r", Digest: d2, At: at(1)},
		{Repo: "s", Digest: d1, At: at(2)},
	}))
	must(t, "delete", x.DeleteAccess(ctx(), []meta.Access{{Repo: "r", Digest: d1}, {Repo: "missing", Digest: d1}}))
	all = eachAccess(t, x)
	same(t, "access records left", all, nil, sortAccess([]meta.Access{{Repo: "r", Digest: d2, At: at(1)}, {Repo: "s", Digest: d1, At: at(2)}}))
	stop := errors.New("stop")
	n := 0
	err := x.EachAccess(ctx(), func(meta.Access) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("EachAccess must stop at fn's first error and return it: %v after %d", err, n)
	}
}

// eachAccess returns every access record, sorted, with times in UTC.
func eachAccess(t *testing.T, x Index) []meta.Access {
	t.Helper()
	var out []meta.Access
	must(t, "each access", x.EachAccess(ctx(), func(a meta.Access) error {
		out = append(out, norm(a).(meta.Access))
		return nil
	}))
	return sortAccess(out)
}

// sortAccess sorts access records by repository, then digest.
func sortAccess(as []meta.Access) []meta.Access {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Repo != as[j].Repo {
			return as[i].Repo < as[j].Repo
		}
		return as[i].Digest < as[j].Digest
	})
	return as
}

// Tags and repositories page in lexical order; a repository whose name
// extends another's does not leak into its tags.
func testListPaging(t *testing.T, x Index) {
	for i := range 5 {
		tag := names("t", 5)[i]
		must(t, "put tag", x.PutTag(ctx(), "r", tag, tagOf(dg(tag), meta.OriginPush, at(i))))
	}
	must(t, "put tag", x.PutTag(ctx(), "rr", "zz", tagOf(dg("zz"), meta.OriginCache, at(0))))
	must(t, "put tag", x.PutTag(ctx(), "r/sub", "zz", tagOf(dg("zz"), meta.OriginCache, at(0))))
	page := func(repo, last string, n int) ([]string, bool) {
		t.Helper()
		tags, more, err := x.Tags(ctx(), repo, last, n)
		must(t, "tags", err)
		return tags, more
	}
	for _, c := range []struct {
		last string
		n    int
		want []string
		more bool
	}{
		{"", 0, []string{"t00", "t01", "t02", "t03", "t04"}, false},
		{"", -1, []string{"t00", "t01", "t02", "t03", "t04"}, false},
		{"", 5, []string{"t00", "t01", "t02", "t03", "t04"}, false},
		{"", 2, []string{"t00", "t01"}, true},
		{"t01", 2, []string{"t02", "t03"}, true},
		{"t03", 2, []string{"t04"}, false},
		{"t02", 0, []string{"t03", "t04"}, false},
		{"t025", 1, []string{"t03"}, true}, // last need not exist
		{"t04", 2, nil, false},
		{"zz", 2, nil, false},
	} {
		tags, more := page("r", c.last, c.n)
		if !slices.Equal(tags, c.want) || more != c.more {
			t.Errorf("Tags(r, last=%q, n=%d) = %v more=%v, want %v more=%v", c.last, c.n, tags, more, c.want, c.more)
		}
	}
	if tags, more := page("unknown", "", 0); len(tags) != 0 || more {
		t.Fatalf("tags of an unknown repository: %v %v", tags, more)
	}
	repos, more, err := x.Repos(ctx(), "", 0)
	if err != nil || !slices.Equal(repos, []string{"r", "r/sub", "rr"}) || more {
		t.Fatalf("repos %v %v %v", repos, more, err)
	}
	repos, more, err = x.Repos(ctx(), "r", 1)
	if err != nil || !slices.Equal(repos, []string{"r/sub"}) || !more {
		t.Fatalf("repos after r, 1: %v %v %v", repos, more, err)
	}
	pushed, err := x.PushedRepos(ctx())
	same(t, "pushed", pushed, err, []string{"r"})
}

// Walks visit one repository (not those whose name extends it) or all,
// and stop at fn's first error.
func testWalk(t *testing.T, x Index) {
	a := putImage(t, x, "r", "v1", meta.OriginCache, "a")
	b := putImage(t, x, "r/sub", "v1", meta.OriginCache, "b")
	c := putImage(t, x, "rr", "v2", meta.OriginPush, "c")
	var tags, mans, blobs []string
	must(t, "each tag", x.EachTag(ctx(), "r", func(l meta.TagLink) error {
		tags = append(tags, l.Repo+":"+l.Name+"@"+l.Digest.String())
		return nil
	}))
	if !slices.Equal(tags, []string{"r:v1@" + a.String()}) {
		t.Fatalf("tags of r: %v", tags)
	}
	must(t, "each manifest", x.EachManifest(ctx(), "", func(l meta.ManifestLink) error {
		if len(l.Refs) != 2 || l.Size != 321 {
			t.Errorf("manifest %s@%s walked without its record: %+v", l.Repo, l.Digest, l.Manifest)
		}
		mans = append(mans, l.Repo+"@"+l.Digest.String())
		return nil
	}))
	slices.Sort(mans)
	if want := []string{"r/sub@" + b.String(), "r@" + a.String(), "rr@" + c.String()}; !slices.Equal(mans, sorted(want)) {
		t.Fatalf("all manifests: %v, want %v", mans, want)
	}
	must(t, "each blob", x.EachBlob(ctx(), "rr", func(l meta.BlobLink) error {
		if l.Size != 10 || l.Origin != meta.OriginPush {
			t.Errorf("blob %s walked without its record: %+v", l.Digest, l.Blob)
		}
		blobs = append(blobs, l.Repo+"@"+l.Digest.String())
		return nil
	}))
	if want := sorted([]string{"rr@" + dg("c/config").String(), "rr@" + dg("c/layer").String()}); !slices.Equal(sorted(blobs), want) {
		t.Fatalf("blobs of rr: %v, want %v", blobs, want)
	}
	n := 0
	must(t, "each tag, all", x.EachTag(ctx(), "", func(meta.TagLink) error { n++; return nil }))
	if n != 3 {
		t.Fatalf("walked %d tags of all repositories, want 3", n)
	}
	stop := errors.New("stop")
	for name, walk := range map[string]func(func() error) error{
		"EachTag": func(f func() error) error { return x.EachTag(ctx(), "", func(meta.TagLink) error { return f() }) },
		"EachManifest": func(f func() error) error {
			return x.EachManifest(ctx(), "", func(meta.ManifestLink) error { return f() })
		},
		"EachBlob": func(f func() error) error { return x.EachBlob(ctx(), "", func(meta.BlobLink) error { return f() }) },
	} {
		calls := 0
		if err := walk(func() error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Errorf("%s must stop at fn's first error and return it: %v after %d calls", name, err, calls)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

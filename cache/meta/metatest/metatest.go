// Package metatest is the shared test suite every implementation of the
// metadata contract (cache/meta) runs: badger, the in-memory index, and any
// other backend. It checks the contract's documented behaviour, not an
// implementation's internals.
package metatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// Index is an implementation under test: every role, and Close.
type Index interface {
	meta.Store
	io.Closer
}

// Open opens an index on the state its Factory made. Called again after
// the previous index was closed, it must reopen the same state: what was
// written before is read back (the Reopen subtest).
type Open func(t *testing.T) Index

// Factory makes a new, empty state (a directory, a container, a map) and
// returns how to open an index on it. The suite calls it once per subtest.
type Factory func(t *testing.T) Open

// Run runs the suite against indexes made by newState.
func Run(t *testing.T, newState Factory) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, x Index)
	}{
		{"Tags", testTags},
		{"Manifests", testManifests},
		{"RemoveManifest", testRemoveManifest},
		{"BlobLinks", testBlobLinks},
		{"Repos", testRepos},
		{"Referrers", testReferrers},
		{"Pins", testPins},
		{"Access", testAccess},
		{"ListPaging", testListPaging},
		{"Walk", testWalk},
		{"Remove", testRemove},
		{"Exclusive", testExclusive},
		{"ConcurrentWriters", testConcurrentWriters},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t, newState(t)))
		})
	}
	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		testReopen(t, newState(t))
	})
}

// open opens an index that is closed when the test ends.
func open(t *testing.T, o Open) Index {
	t.Helper()
	x := o(t)
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return x
}

// at is a fixed instant with nanoseconds, so that a backend that rounds
// times is caught.
func at(minutes int) time.Time {
	return time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).Add(time.Duration(minutes) * time.Minute)
}

func dg(s string) digest.Digest { return digest.FromString(s) }

// norm makes a record, or a slice of records, comparable with
// reflect.DeepEqual: its times in UTC, whatever location a backend decodes
// them in.
func norm(v any) any {
	r := reflect.New(reflect.TypeOf(v)).Elem()
	r.Set(reflect.ValueOf(v))
	switch r.Kind() {
	case reflect.Slice:
		if r.IsNil() {
			return v
		}
		out := reflect.MakeSlice(r.Type(), r.Len(), r.Len())
		for i := range r.Len() {
			out.Index(i).Set(reflect.ValueOf(norm(r.Index(i).Interface())))
		}
		return out.Interface()
	case reflect.Struct:
		for i := range r.NumField() {
			if f := r.Field(i); f.CanSet() {
				if tm, ok := f.Interface().(time.Time); ok {
					f.Set(reflect.ValueOf(tm.UTC()))
				}
			}
		}
	}
	return r.Interface()
}

// same fails the test unless got (read with err) equals want.
func same(t *testing.T, what string, got any, err error, want any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// notFound fails the test unless err wraps meta.ErrNotFound.
func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("%s: want an error wrapping meta.ErrNotFound, got %v", what, err)
	}
}

// must fails the test on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func ctx() context.Context { return context.Background() }

func tagOf(d digest.Digest, o meta.Origin, fetched time.Time) meta.Tag {
	return meta.Tag{Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 321, FetchedAt: fetched, Origin: o}
}

func manifestOf(o meta.Origin, added time.Time, refs ...digest.Digest) meta.Manifest {
	return meta.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 321, Refs: refs, Origin: o, Added: added}
}

// putImage links a manifest with its blobs to repo and tags it.
func putImage(t *testing.T, x Index, repo, tag string, o meta.Origin, name string) digest.Digest {
	t.Helper()
	d, cfg, layer := dg(name), dg(name+"/config"), dg(name+"/layer")
	for _, b := range []digest.Digest{cfg, layer} {
		must(t, "link blob", x.LinkBlob(ctx(), repo, b, meta.Blob{Size: 10, Origin: o, Added: at(0)}))
	}
	must(t, "put manifest", x.PutManifest(ctx(), repo, d, manifestOf(o, at(0), cfg, layer), tag, tagOf(d, o, at(0))))
	return d
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

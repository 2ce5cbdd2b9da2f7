package badgermeta

import (
	"context"

	"errors"
	"github.com/airlock/airlock/cache/meta"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// RemoveManifest takes the manifest's tags with it, and only its own, in
// its own repository; pushed repositories are listed as such.
func TestRemoveManifestAndPushedRepos(t *testing.T) {
	t.Parallel()
	x := open(t, t.TempDir())
	defer x.Close()
	now := time.Now()
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	put := func(repo string, d digest.Digest, tag string, o meta.Origin) {
		t.Helper()
		if err := x.PutManifest(context.Background(), repo, d, meta.Manifest{Origin: o, Added: now}, tag, meta.Tag{Digest: d, Origin: o}); err != nil {
			t.Fatal(err)
		}
	}
	put("team/app", d1, "a", meta.OriginPush)
	put("team/app", d1, "b", meta.OriginPush)
	put("team/app", d2, "c", meta.OriginPush)
	put("team/app-other", d1, "a", meta.OriginPush)
	put("cache/repo", d1, "a", meta.OriginCache)
	removed, err := x.RemoveManifest(context.Background(), "team/app", d1)
	sort.Strings(removed)
	if err != nil || !reflect.DeepEqual(removed, []string{"a", "b"}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if tags, _, _ := x.Tags(context.Background(), "team/app", "", 0); !reflect.DeepEqual(tags, []string{"c"}) {
		t.Fatalf("tags left %v", tags)
	}
	if _, err := x.Tag(context.Background(), "team/app-other", "a"); err != nil {
		t.Fatalf("another repository's tag went too: %v", err)
	}
	if _, err := x.RemoveManifest(context.Background(), "team/app", d1); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	pushed, err := x.PushedRepos(context.Background())
	if err != nil || !reflect.DeepEqual(pushed, []string{"team/app", "team/app-other"}) {
		t.Fatalf("pushed repos %v %v", pushed, err)
	}
}

package catalog

import (
	"context"
	"testing"
)

// Generation reports its progress: from nothing to all of the layers'
// content, never backwards; a second run finds everything cached and
// reports it done at once.
func TestGenerateProgress(t *testing.T) {
	t.Parallel()
	opts := Options{Name: NameNone, Seed: 7, CacheDir: t.TempDir(), Extra: []Extra{
		{Repo: "progress/a", Tag: "v1", LayerSizes: []int64{30_000, 20_000}},
		{Repo: "progress/b", Tag: "v1", LayerSizes: []int64{10_000}},
	}}
	var calls [][2]int64
	opts.Progress = func(done, total int64) { calls = append(calls, [2]int64{done, total}) }
	if _, err := Generate(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 4 || calls[0] != [2]int64{0, 60_000} || calls[3] != [2]int64{60_000, 60_000} {
		t.Fatalf("progress calls %v", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] {
			t.Fatalf("progress went backwards: %v", calls)
		}
	}
	calls = nil
	if _, err := Generate(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != [2]int64{60_000, 60_000} {
		t.Fatalf("cached: progress calls %v", calls)
	}
}

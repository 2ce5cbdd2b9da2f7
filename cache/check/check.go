// Package check makes the metadata index and the content store agree when
// airlock starts, quickly: it walks the store once (names and sizes, no
// reading), drops links whose bytes are missing, re-hashes only files whose
// size disagrees with their record (deleting them if they do not verify),
// and drops tags left pointing at nothing. Files no link needs are left to
// the garbage collector.
package check

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// Store is what the check needs of the content store.
type Store interface {
	content.Provider
	content.Deleter
	content.Walker
}

// Index is what the check needs of the metadata index: a walk of every
// link, and their removal with nothing linked meanwhile.
type Index interface {
	meta.Walker
	meta.Remover
}

// Report is what a check found and did.
type Report struct {
	Blobs int   // files in the store
	Bytes int64 // their size
	// Links checked.
	Manifests, BlobLinks, Tags int
	// Links dropped because their bytes were missing or corrupt, and tags
	// dropped because their manifest was.
	DroppedManifests, DroppedBlobLinks, DroppedTags int
	// Rehashed files had a size that disagreed with a record; Corrupt ones
	// did not verify and were deleted.
	Rehashed, Corrupt int
	Took              time.Duration
}

// Dropped is the number of links dropped.
func (r Report) Dropped() int { return r.DroppedManifests + r.DroppedBlobLinks + r.DroppedTags }

// Run checks store and index against each other and repairs the index.
func Run(ctx context.Context, store Store, index Index, log *zap.Logger) (Report, error) {
	start := time.Now()
	var rep Report
	sizes := map[digest.Digest]int64{}
	err := store.Walk(ctx, func(info content.Info) error {
		sizes[info.Digest] = info.Size
		rep.Blobs++
		rep.Bytes += info.Size
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("check: walk store: %w", err)
	}
	err = index.Exclusive(ctx, func(ctx context.Context) error { return repair(ctx, store, index, log, sizes, &rep) })
	rep.Took = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	level := zap.InfoLevel
	if rep.Dropped() > 0 || rep.Corrupt > 0 {
		level = zap.WarnLevel
	}
	log.Log(level, "store check",
		zap.Int("blobs", rep.Blobs), zap.Int64("bytes", rep.Bytes),
		zap.Int("manifests", rep.Manifests), zap.Int("blob_links", rep.BlobLinks), zap.Int("tags", rep.Tags),
		zap.Int("dropped_manifests", rep.DroppedManifests), zap.Int("dropped_blob_links", rep.DroppedBlobLinks),
		zap.Int("dropped_tags", rep.DroppedTags), zap.Int("rehashed", rep.Rehashed), zap.Int("corrupt", rep.Corrupt),
		zap.Duration("took", rep.Took))
	return rep, nil
}

func repair(ctx context.Context, store Store, index Index, log *zap.Logger, sizes map[digest.Digest]int64, rep *Report) error {
	var mans []meta.ManifestLink
	var blobs []meta.BlobLink
	suspect := map[digest.Digest]bool{}
	if err := index.EachManifest(ctx, "", func(l meta.ManifestLink) error {
		mans = append(mans, l)
		if size, ok := sizes[l.Digest]; ok && size != l.Size {
			suspect[l.Digest] = true
		}
		return nil
	}); err != nil {
		return err
	}
	if err := index.EachBlob(ctx, "", func(l meta.BlobLink) error {
		blobs = append(blobs, l)
		if size, ok := sizes[l.Digest]; ok && l.Size > 0 && size != l.Size {
			suspect[l.Digest] = true
		}
		return nil
	}); err != nil {
		return err
	}
	rep.Manifests, rep.BlobLinks = len(mans), len(blobs)
	// Only files whose size disagrees are read.
	for d := range suspect {
		rep.Rehashed++
		ok, err := verify(ctx, store, d)
		if err != nil {
			return err
		}
		if ok {
			log.Warn("store check: a record has the wrong size for a blob that verifies; keeping it", zap.String("digest", d.String()), zap.Int64("size", sizes[d]))
			continue
		}
		rep.Corrupt++
		log.Warn("store check: deleting a blob that does not match its digest", zap.String("digest", d.String()))
		if err := store.Delete(ctx, d); err != nil {
			return err
		}
		delete(sizes, d)
	}
	removals := map[string]*meta.Removal{}
	removal := func(repo string) *meta.Removal {
		if removals[repo] == nil {
			removals[repo] = &meta.Removal{Repo: repo}
		}
		return removals[repo]
	}
	kept := map[string]bool{} // repo@digest of manifests kept
	for _, l := range mans {
		if _, ok := sizes[l.Digest]; !ok {
			removal(l.Repo).Manifests = append(removal(l.Repo).Manifests, l.Digest)
			rep.DroppedManifests++
			continue
		}
		kept[l.Repo+"@"+l.Digest.String()] = true
	}
	for _, l := range blobs {
		if _, ok := sizes[l.Digest]; !ok {
			removal(l.Repo).Blobs = append(removal(l.Repo).Blobs, l.Digest)
			rep.DroppedBlobLinks++
		}
	}
	if err := index.EachTag(ctx, "", func(t meta.TagLink) error {
		rep.Tags++
		if !kept[t.Repo+"@"+t.Digest.String()] {
			removal(t.Repo).Tags = append(removal(t.Repo).Tags, t.Name)
			rep.DroppedTags++
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range removals {
		log.Warn("store check: dropping links whose bytes are gone",
			zap.String("repo", r.Repo), zap.Strings("tags", r.Tags),
			zap.Int("manifests", len(r.Manifests)), zap.Int("blobs", len(r.Blobs)))
		if err := index.Remove(ctx, *r); err != nil {
			return err
		}
	}
	return nil
}

// verify re-hashes one stored blob.
func verify(ctx context.Context, p content.Provider, d digest.Digest) (bool, error) {
	rc, _, err := p.Open(ctx, d)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, rc); err != nil {
		return false, fmt.Errorf("read %s: %w", d, err)
	}
	return v.Verified(), nil
}

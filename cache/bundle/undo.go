package bundle

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/meta"
	"github.com/opencontainers/go-digest"
)

// journal is one import's record of what it changed, so that a refused
// import can put the content store and the index back as they were.
type journal struct {
	store Store
	index Index
	// blobs were not in store when the import began writing them.
	blobs []digest.Digest
	// undo reverts the index writes, one function per record, in the
	// order they were made.
	undo []func(ctx context.Context) error
}

// repo remembers whether repo has a record before the first link to it.
// A record the import created is removed with the links if the repository
// is a cached one; a pushed repository keeps its (empty) record, as it
// does when its last image is deleted.
func (j *journal) repo(ctx context.Context, repo string) error {
	_, err := j.index.Repo(ctx, repo)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meta.ErrNotFound):
		j.undo = append(j.undo, func(ctx context.Context) error { return j.index.Remove(ctx, meta.Removal{Repo: repo}) })
		return nil
	}
	return err
}

// blobLink remembers the link of blob d to repo before it is written.
func (j *journal) blobLink(ctx context.Context, repo string, d digest.Digest) error {
	return remember(j, func() (meta.Blob, error) { return j.index.Blob(ctx, repo, d) },
		func(ctx context.Context, b meta.Blob) error { return j.index.LinkBlob(ctx, repo, d, b) },
		func(ctx context.Context) error { return j.index.UnlinkBlob(ctx, repo, d) })
}

// manifest remembers the link of manifest d to repo before it is written.
func (j *journal) manifest(ctx context.Context, repo string, d digest.Digest) error {
	return remember(j, func() (meta.Manifest, error) { return j.index.Manifest(ctx, repo, d) },
		func(ctx context.Context, m meta.Manifest) error {
			return j.index.PutManifest(ctx, repo, d, m, "", meta.Tag{})
		},
		func(ctx context.Context) error { return j.index.DeleteManifest(ctx, repo, d) })
}

// tag remembers repo's tag before it is written.
func (j *journal) tag(ctx context.Context, repo, tag string) error {
	return remember(j, func() (meta.Tag, error) { return j.index.Tag(ctx, repo, tag) },
		func(ctx context.Context, t meta.Tag) error { return j.index.PutTag(ctx, repo, tag, t) },
		func(ctx context.Context) error { return j.index.DeleteTag(ctx, repo, tag) })
}

// remember reads a record with get and adds its undo: put it back as it
// was, or delete it if there was none.
func remember[T any](j *journal, get func() (T, error), put func(context.Context, T) error, del func(context.Context) error) error {
	prev, err := get()
	switch {
	case err == nil:
		j.undo = append(j.undo, func(ctx context.Context) error { return put(ctx, prev) })
	case errors.Is(err, meta.ErrNotFound):
		j.undo = append(j.undo, func(ctx context.Context) error {
			if err := del(ctx); !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			return nil
		})
	default:
		return err
	}
	return nil
}

// rollback reverts the index writes, newest first, then deletes the blobs
// the import added. If an index record cannot be put back, the blobs stay:
// a link may still point at them (the garbage collector removes the ones
// nothing links).
func (j *journal) rollback(ctx context.Context) error {
	var errs []error
	for i := len(j.undo) - 1; i >= 0; i-- {
		if err := j.undo[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bundle: index: %w", errors.Join(errs...))
	}
	for _, d := range j.blobs {
		if err := j.store.Delete(ctx, d); err != nil && !errors.Is(err, content.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bundle: remove blobs: %w", errors.Join(errs...))
	}
	return nil
}

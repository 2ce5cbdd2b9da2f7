package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/manifest"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/reference"
	"github.com/opencontainers/go-digest"
)

var (
	_ cache.ManifestPutter = (*Engine)(nil)
	_ cache.Deleter        = (*Engine)(nil)
)

// quotaDenied turns a push the storage quota has no room for (pins and
// pushed content fill it) into a denial that says so.
func quotaDenied(err error) error {
	if errors.Is(err, content.ErrNoRoom) {
		return fmt.Errorf("%w: storage quota exceeded: %v", cache.ErrDenied, err)
	}
	return err
}

// PutManifest implements cache.ManifestPutter.
func (e *Engine) PutManifest(ctx context.Context, repo, ref, mediaType string, body []byte, tags []string) (*cache.PushedManifest, error) {
	if err := e.writable(repo); err != nil {
		return nil, err
	}
	if int64(len(body)) > e.maxManifest {
		return nil, fmt.Errorf("%w: %d bytes is over the limit of %d", cache.ErrManifestInvalid, len(body), e.maxManifest)
	}
	var d digest.Digest
	if want, err := digest.Parse(ref); err == nil {
		if !want.Algorithm().Available() {
			return nil, fmt.Errorf("%w: unsupported algorithm in %q", cache.ErrDigestInvalid, ref)
		}
		if d = want.Algorithm().FromBytes(body); d != want {
			return nil, fmt.Errorf("%w: the manifest's digest is %s, not %s", cache.ErrDigestInvalid, d, want)
		}
	} else {
		d = digest.Canonical.FromBytes(body)
		tags = append([]string{ref}, tags...)
	}
	for _, t := range tags {
		if !reference.ValidTag(t) {
			return nil, fmt.Errorf("%w: %q", cache.ErrTagInvalid, t)
		}
	}
	p, err := checkPushed(body, mediaType)
	if err != nil {
		return nil, err
	}
	if err := e.checkRefs(ctx, repo, p); err != nil {
		return nil, err
	}
	if _, err := content.WriteBlob(ctx, e.store, d, body); err != nil {
		return nil, quotaDenied(err)
	}
	now := e.now()
	rec := meta.Manifest{MediaType: p.MediaType, Size: int64(len(body)), ArtifactType: p.ArtifactType, Subject: p.SubjectDigest(), Refs: p.Refs(), Origin: meta.OriginPush, Added: now}
	if p.Subject != nil {
		rec.Annotations = p.Annotations
	}
	tag := meta.Tag{Digest: d, MediaType: p.MediaType, Size: int64(len(body)), FetchedAt: now, Origin: meta.OriginPush}
	first := ""
	if len(tags) > 0 {
		first = tags[0]
	}
	if err := e.index.PutManifest(ctx, repo, d, rec, first, tag); err != nil {
		return nil, err
	}
	for _, t := range tags[min(1, len(tags)):] {
		if err := e.index.PutTag(ctx, repo, t, tag); err != nil {
			return nil, err
		}
	}
	e.m.push.pushed.WithLabelValues("manifest").Inc()
	return &cache.PushedManifest{Digest: d, Subject: p.SubjectDigest()}, nil
}

// checkPushed parses a pushed manifest and checks it is one airlock can
// serve (manifest.ParsePushed).
func checkPushed(body []byte, contentType string) (manifest.Manifest, error) {
	p, err := manifest.ParsePushed(body, contentType)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("%w: %v", cache.ErrManifestInvalid, err)
	}
	return p, nil
}

// checkRefs checks that repo holds every blob and child manifest p names.
func (e *Engine) checkRefs(ctx context.Context, repo string, p manifest.Manifest) error {
	for _, bd := range p.Blobs() {
		b := bd.Digest
		if _, err := e.index.Blob(ctx, repo, b); errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("%w: blob %s", cache.ErrManifestBlobUnknown, b)
		} else if err != nil {
			return err
		}
		if _, err := e.store.Stat(ctx, b); errors.Is(err, content.ErrNotFound) {
			return fmt.Errorf("%w: blob %s (not in the store)", cache.ErrManifestBlobUnknown, b)
		} else if err != nil {
			return err
		}
	}
	for _, cd := range p.Manifests {
		c := cd.Digest
		if _, err := e.index.Manifest(ctx, repo, c); errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("%w: manifest %s", cache.ErrManifestBlobUnknown, c)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// DeleteManifest implements cache.Deleter.
func (e *Engine) DeleteManifest(ctx context.Context, repo, ref string) error {
	if err := e.writable(repo); err != nil {
		return err
	}
	if d, err := digest.Parse(ref); err == nil {
		if _, err := e.index.RemoveManifest(ctx, repo, d); errors.Is(err, meta.ErrNotFound) {
			return e.unknown(ctx, repo, cache.ErrManifestUnknown, ref)
		} else if err != nil {
			return err
		}
		e.m.push.deleted.WithLabelValues("manifest").Inc()
		return nil
	}
	if !reference.ValidTag(ref) {
		return fmt.Errorf("%w: %q", cache.ErrTagInvalid, ref)
	}
	if err := e.index.DeleteTag(ctx, repo, ref); errors.Is(err, meta.ErrNotFound) {
		return e.unknown(ctx, repo, cache.ErrManifestUnknown, ref)
	} else if err != nil {
		return err
	}
	e.m.push.deleted.WithLabelValues("tag").Inc()
	return nil
}

// DeleteBlob implements cache.Deleter.
func (e *Engine) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := e.writable(repo); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	if err := e.index.UnlinkBlob(ctx, repo, d); errors.Is(err, meta.ErrNotFound) {
		return e.unknown(ctx, repo, cache.ErrBlobUnknown, d.String())
	} else if err != nil {
		return err
	}
	e.m.push.deleted.WithLabelValues("blob").Inc()
	return nil
}

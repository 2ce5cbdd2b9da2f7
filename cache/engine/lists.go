package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/manifest"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// Tags implements cache.Lister. A repository under a rule lists the union
// of the upstream's tags and the local ones (taglist.go), unless the rule
// says tagList: local; any other repository lists its local tags.
func (e *Engine) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	if !rules.ValidRepository(repo) {
		return nil, false, fmt.Errorf("%w: %q", cache.ErrNameInvalid, repo)
	}
	if t := e.resolve(repo); t.cached() && !e.localTagList(t) {
		if peer := e.peerFor(ctx, repo); peer != "" {
			tags, more, err := e.cluster.Tags(ctx, peer, repo, last, n)
			if err == nil {
				return tags, more, nil
			}
			if !peerGone(err) {
				return nil, false, upstreamErr(err, cache.ErrNameUnknown, repo)
			}
			e.log.Info("tag listing owner unreachable: listing here", zap.String("owner", peer), zap.String("repo", repo), zap.Error(err))
		}
		return e.unionTags(ctx, repo, last, n, t)
	}
	tags, more, err := e.index.Tags(ctx, repo, last, n)
	if err != nil {
		return nil, false, err
	}
	if len(tags) == 0 && last == "" {
		switch _, err := e.index.Repo(ctx, repo); {
		case errors.Is(err, meta.ErrNotFound):
			return nil, false, fmt.Errorf("%w: %s", cache.ErrNameUnknown, repo)
		case err != nil:
			return nil, false, err
		}
	}
	return tags, more, nil
}

// Catalog implements cache.Lister.
func (e *Engine) Catalog(ctx context.Context, last string, n int) ([]string, bool, error) {
	return e.index.Repos(ctx, last, n)
}

// referrersIndex is the OCI image index a referrers response carries.
type referrersIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []v1.Descriptor `json:"manifests"`
}

func emptyReferrers() referrersIndex {
	return referrersIndex{SchemaVersion: 2, MediaType: manifest.MediaTypeOCIIndex, Manifests: []v1.Descriptor{}}
}

// Referrers implements cache.ReferrersSource.
func (e *Engine) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) (*cache.Referrers, error) {
	if !rules.ValidRepository(repo) {
		return nil, fmt.Errorf("%w: %q", cache.ErrNameInvalid, repo)
	}
	if err := content.ValidateDigest(d); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", cache.ErrDigestInvalid, d, err)
	}
	idx := emptyReferrers()
	if t := e.resolve(repo); t.cached() {
		up, err := e.upstreamReferrers(ctx, repo, d, t)
		if err != nil {
			return nil, err
		}
		idx.Manifests = append(idx.Manifests, up.Manifests...)
	}
	err := e.index.EachManifest(ctx, repo, func(l meta.ManifestLink) error {
		if l.Subject == d && l.Origin == meta.OriginPush {
			idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, ArtifactType: l.ArtifactType, Annotations: l.Annotations})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &cache.Referrers{}
	if artifactType != "" {
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.ArtifactType == artifactType {
				kept = append(kept, m)
			}
		}
		idx.Manifests = kept
		out.Filtered = true
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	out.Body = body
	return out, nil
}

// upstreamReferrers returns the upstream's referrers of d, cached for the
// rule's tag TTL; the last copy is used while the upstream is down.
func (e *Engine) upstreamReferrers(ctx context.Context, repo string, d digest.Digest, t target) (referrersIndex, error) {
	rec, err := e.index.Referrers(ctx, repo, d)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return referrersIndex{}, err
	}
	have := err == nil
	if !have || e.now().Sub(rec.FetchedAt) >= e.ttl(t) {
		v, _, ferr := e.flights.Do(ctx, "referrers\x00"+repo+"\x00"+d.String(), func() (any, error) {
			fctx, cancel := detached(ctx, e.revalidateTimeout)
			defer cancel()
			if now, err := e.index.Referrers(fctx, repo, d); err == nil && e.now().Sub(now.FetchedAt) < e.ttl(t) {
				return now, nil // fetched just before this began
			}
			e.m.upstream(t.rule, "referrers", "GET")
			r, err := e.up.Referrers(fctx, t.repo, d, "")
			if errors.Is(err, upstream.ErrNotFound) {
				b, _ := json.Marshal(emptyReferrers())
				r, err = upstream.Referrers{Body: b, MediaType: manifest.MediaTypeOCIIndex}, nil
			}
			if err != nil {
				return nil, err
			}
			nr := meta.Referrers{Body: r.Body, MediaType: r.MediaType, FetchedAt: e.now()}
			return nr, e.index.PutReferrers(fctx, repo, d, nr)
		})
		switch {
		case ferr == nil:
			rec, have = v.(meta.Referrers), true
		case ctx.Err() != nil:
			return referrersIndex{}, ctx.Err()
		case have:
			e.m.stale.WithLabelValues(t.rule).Inc()
			e.log.Warn("serving stale referrers: upstream failed", zap.String("repo", repo), zap.Error(ferr))
		default:
			return referrersIndex{}, upstreamErr(ferr, cache.ErrUnavailable, repo)
		}
	}
	var idx referrersIndex
	if err := json.Unmarshal(rec.Body, &idx); err != nil {
		return referrersIndex{}, fmt.Errorf("upstream referrers of %s: %w", d, err)
	}
	return idx, nil
}

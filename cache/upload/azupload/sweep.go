package azupload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/upload"
	"go.uber.org/zap"
)

// sweepEvery is how often Run looks for expired sessions: a quarter of
// the timeout, from 1 s to 1 min.
func (s *Store) sweepEvery() time.Duration {
	return min(max(s.lim.Timeout/4, time.Second), time.Minute)
}

// Run discards expired sessions and orphaned data (an append blob left
// without its record by a replica that died between the two) until ctx
// ends. Every replica runs it; they skip the sessions another holds.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("upload: sweep", zap.Error(err))
		}
	}
}

// Sweep runs one pass of Run.
func (s *Store) Sweep(ctx context.Context) error {
	live := map[string]bool{}
	var expired []string
	err := s.idx.EachUpload(ctx, func(id string, u azmeta.Upload) error {
		live[id] = true
		if s.expiredAt(u.Updated) {
			expired = append(expired, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("azupload: list sessions: %w", err)
	}
	s.open.Store(int64(len(live) - len(expired)))
	for _, id := range expired {
		if err := s.expire(ctx, id); err != nil {
			s.log.Warn("upload: discard an expired session", zap.String("upload", id), zap.Error(err))
		}
	}
	return s.sweepOrphans(ctx, live)
}

// expire discards session id if it is still expired and nobody holds it.
func (s *Store) expire(ctx context.Context, id string) error {
	ss := &session{st: s, id: id}
	h, err := ss.lock(ctx, false)
	if errors.Is(err, upload.ErrOffset) || errors.Is(err, upload.ErrUnknown) {
		return nil // busy (a request runs: it is not idle), or gone
	}
	if err != nil {
		return err
	}
	defer ss.unlock(h)
	rec, v, err := s.idx.Upload(h.ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !s.expiredAt(rec.Updated) {
		return nil
	}
	ss.repo = rec.Repo
	ss.size.Store(rec.Size)
	return ss.end(h, v, true)
}

// sweepOrphans deletes append blobs older than the timeout whose session
// has no record (live lists the records found).
func (s *Store) sweepOrphans(ctx context.Context, live map[string]bool) error {
	pfx := DataPrefix
	pager := s.ctr.Client().NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &pfx})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("azupload: list %s: %w", DataPrefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil || b.Properties.LastModified == nil {
				continue
			}
			id := strings.TrimPrefix(*b.Name, DataPrefix)
			if !validID(id) || live[id] || !s.expiredAt(*b.Properties.LastModified) {
				continue
			}
			if err := s.dropOrphan(ctx, id); err != nil {
				s.log.Warn("upload: delete orphaned data", zap.String("upload", id), zap.Error(err))
			}
		}
	}
	return nil
}

// dropOrphan deletes session id's append blob under its lease if it still
// has no record.
func (s *Store) dropOrphan(ctx context.Context, id string) error {
	ss := &session{st: s, id: id}
	h, err := ss.lock(ctx, false)
	if errors.Is(err, upload.ErrOffset) || errors.Is(err, upload.ErrUnknown) {
		return nil
	}
	if err != nil {
		return err
	}
	defer ss.unlock(h)
	if _, _, err := s.idx.Upload(h.ctx, id); !errors.Is(err, meta.ErrNotFound) {
		return err // a record appeared (a start in progress), or the index failed
	}
	if err := s.ctr.Delete(h.ctx, dataName(id), h.l.Cond()); err != nil {
		return err
	}
	h.ended = true
	s.log.Info("upload: deleted data without a session", zap.String("upload", id))
	return nil
}

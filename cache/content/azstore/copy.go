package azstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
)

var _ content.Copier = (*Store)(nil)

// copyPoll bounds the wait between two looks at a copy the service runs
// in the background.
const copyPoll = time.Second

// Copy implements content.Copier with the service's Copy Blob from
// src, a blob of the same container (its version is an ETag): the bytes
// never leave the storage account. The new blob has src's type (an
// upload's append blob makes an append blob; readers do not care). It is
// created only if absent (If-None-Match: *); one already there is
// touched, as a commit of an ingest does. A copy the service runs in the
// background is waited for; one that fails is deleted, so no blob d with
// other bytes stays. The copy is not read back: the caller verified the
// bytes it wrote to src.
func (s *Store) Copy(ctx context.Context, d digest.Digest, size int64, src content.CopySource) (content.Info, error) {
	if err := content.ValidateWrite(d); err != nil {
		return content.Info{}, fmt.Errorf("azstore: copy %q: %w", d, err)
	}
	name := blobName(d)
	dst := s.ctr.Client().NewBlobClient(name)
	etag := azcore.ETag(src.Version)
	for try := 1; ; try++ {
		r, err := dst.StartCopyFromURL(ctx, s.ctr.Client().NewBlobClient(src.Name).URL(), &blob.StartCopyFromURLOptions{
			SourceModifiedAccessConditions: &blob.SourceModifiedAccessConditions{SourceIfMatch: &etag},
			AccessConditions:               azure.Cond{IfNoneMatch: azcore.ETagAny}.Access(),
		})
		if err = azure.Classify("copy", name, err); errors.Is(err, azure.ErrExists) {
			// Committed already: touched so a collector comparing its
			// ModTime spares it; if it vanished meanwhile, copy again.
			mod, terr := s.touch(ctx, s.ctr.Client().NewBlockBlobClient(name), name, size)
			if terr == nil {
				return content.Info{Digest: d, Size: size, ModTime: mod}, nil
			}
			if !errors.Is(terr, azure.ErrNotFound) || try >= maxPutTries {
				return content.Info{}, terr
			}
			continue
		}
		if err != nil {
			return content.Info{}, copyErr(src, err)
		}
		mod := azure.Value(r.LastModified)
		if azure.Value(r.CopyStatus) != blob.CopyStatusTypeSuccess {
			if mod, err = s.awaitCopy(ctx, name, azure.Value(r.CopyID)); err != nil {
				return content.Info{}, err
			}
		}
		return s.copied(ctx, d, size, src, mod)
	}
}

// copied checks the size of a finished copy; a wrong one is deleted.
func (s *Store) copied(ctx context.Context, d digest.Digest, size int64, src content.CopySource, mod time.Time) (content.Info, error) {
	name := blobName(d)
	p, err := s.ctr.Stat(ctx, name)
	if err != nil {
		return content.Info{}, fmt.Errorf("azstore: copy %s: %w", d, err)
	}
	if p.Size != size {
		s.discard(name, p.ETag)
		return content.Info{}, fmt.Errorf("azstore: copy %s from %s made %d bytes, not %d", d, src.Name, p.Size, size)
	}
	if !p.LastModified.IsZero() {
		mod = p.LastModified
	}
	return content.Info{Digest: d, Size: size, ModTime: mod}, nil
}

// copyErr turns a refused copy into the contract's errors.
func copyErr(src content.CopySource, err error) error {
	var re *azcore.ResponseError
	switch {
	case bloberror.HasCode(err, bloberror.SourceConditionNotMet), errors.Is(err, azure.ErrConditionNotMet),
		errors.Is(err, azure.ErrNotFound):
		return fmt.Errorf("%w: copy source %s (version %s) is gone or changed: %w", content.ErrNotFound, src.Name, src.Version, err)
	case bloberror.HasCode(err, bloberror.CannotVerifyCopySource, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure),
		errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", content.ErrNoCopy, err)
	}
	return err
}

// awaitCopy waits until the copy id into name ends, and returns the
// blob's Last-Modified. A failed or aborted copy is deleted and reported
// as content.ErrNoCopy.
func (s *Store) awaitCopy(ctx context.Context, name, id string) (time.Time, error) {
	bc := s.ctr.Client().NewBlobClient(name)
	for {
		p, err := bc.GetProperties(ctx, nil)
		if err != nil {
			return time.Time{}, azure.Classify("copy status", name, err)
		}
		if cid := azure.Value(p.CopyID); id != "" && cid != id {
			return time.Time{}, fmt.Errorf("azstore: copy into %s: another copy (%s) replaced ours (%s)", name, cid, id)
		}
		switch azure.Value(p.CopyStatus) {
		case blob.CopyStatusTypeSuccess:
			return azure.Value(p.LastModified), nil
		case blob.CopyStatusTypePending:
		default:
			s.discard(name, azure.Value(p.ETag))
			return time.Time{}, fmt.Errorf("%w: copy into %s ended %s: %s", content.ErrNoCopy, name, azure.Value(p.CopyStatus), azure.Value(p.CopyStatusDescription))
		}
		t := time.NewTimer(copyPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			// The copy goes on in the service; a blob it leaves would be
			// complete and correct, or failed and without readers' trust
			// (Open verifies what it downloads).
			return time.Time{}, ctx.Err()
		}
	}
}

// discard deletes a copy that must not stay, if it is still the one seen.
func (s *Store) discard(name string, etag azcore.ETag) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.ctr.Delete(ctx, name, azure.Cond{IfMatch: etag}) // best effort: the caller reports the failure
}

package azupload

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/storage/azure"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// publish makes the first size bytes of session id's append blob (at
// version etag, verified to hash to d) the blob d of the content store:
// copied inside the account if the store can, else streamed through an
// ingest, which verifies them again.
func (s *Store) publish(ctx context.Context, d digest.Digest, size int64, id, etag string) (content.Info, error) {
	if cp, ok := s.dst.(content.Copier); ok && s.copy {
		info, err := cp.Copy(ctx, d, size, content.CopySource{Name: dataName(id), Version: etag})
		if !errors.Is(err, content.ErrNoCopy) {
			return info, err
		}
		s.noCopyMu.Do(func() {
			s.log.Warn("upload: the storage account refused a copy inside it; committed uploads are streamed through this replica", zap.Error(err))
		})
	}
	w, err := s.dst.Ingest(ctx, d, size)
	if err != nil {
		return content.Info{}, err
	}
	defer w.Close()
	rc, err := openRange(ctx, s.ctr, dataName(id), 0, size, etag)
	if err != nil {
		return content.Info{}, err
	}
	defer rc.Close()
	if n, err := io.Copy(w, rc); err != nil || n != size {
		return content.Info{}, fmt.Errorf("azupload: stream %s into %s: %d of %d bytes: %w", dataName(id), d, n, size, err)
	}
	return w.Commit(ctx)
}

// openRange reads n bytes of blob name from off, if the blob is still at
// etag.
func openRange(ctx context.Context, ctr *azure.Container, name string, off, n int64, etag string) (io.ReadCloser, error) {
	et := azcore.ETag(etag)
	r, err := ctr.Client().NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: off, Count: n},
		AccessConditions: azure.Cond{IfMatch: et}.Access(),
	})
	if err != nil {
		return nil, fmt.Errorf("azupload: read %s: %w", name, azure.Classify("get", name, err))
	}
	return r.Body, nil
}

// marshalHash is a running hash's state.
func marshalHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("azupload: %T cannot save its state", h)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("azupload: save hash state: %w", err)
	}
	return b, nil
}

// restoreHash is a hash of alg resumed from state.
func restoreHash(alg digest.Algorithm, state []byte) (hash.Hash, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("azupload: %w: %s", content.ErrUnsupportedDigest, alg)
	}
	h := alg.Hash()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("azupload: %T cannot resume from a state", h)
	}
	if err := u.UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("azupload: resume the %s hash: %w", alg, err)
	}
	return h, nil
}

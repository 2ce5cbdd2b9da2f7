package azmeta

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/storage/azure"
	"golang.org/x/sync/errgroup"
)

// A record is its JSON in the blob's body. A copy of a small record (up to
// maxMetaRecord bytes of JSON, base64 in the blob's metadata entry metaKey)
// rides along in listings, so that a walk reads a page of records per
// request instead of one blob per record; a larger record (a manifest
// with hundreds of children) is read from its body.
const (
	metaKey       = "rec"
	maxMetaRecord = 4 << 10
)

var contentType = "application/json"

// notFound turns the container's ErrNotFound into one that also wraps
// meta.ErrNotFound; other errors are returned as they are.
func notFound(err error) error {
	if errors.Is(err, azure.ErrNotFound) && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("%w: %w", meta.ErrNotFound, err)
	}
	return err
}

// tooLong is the answer to a read or delete of a record whose name the
// service could not hold: no such record can exist.
func tooLong(name string) error {
	return fmt.Errorf("azmeta: %.64s... (%d bytes): %w", name, len(name), meta.ErrNotFound)
}

// get reads the record blob name: its JSON and ETag. Errors wrap
// meta.ErrNotFound if it does not exist.
func (x *Index) get(ctx context.Context, name string) ([]byte, azcore.ETag, error) {
	if len(name) > maxName {
		return nil, "", tooLong(name)
	}
	b, p, err := x.ctr.Get(ctx, name)
	x.m.request("get", err)
	if err != nil {
		return nil, "", notFound(err)
	}
	return b, p.ETag, nil
}

// getJSON reads the record name into v (a pointer).
func (x *Index) getJSON(ctx context.Context, name string, v any) (azcore.ETag, error) {
	b, etag, err := x.get(ctx, name)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("azmeta: record %s: %w", name, err)
	}
	return etag, nil
}

// put writes v as the record name under cond in one request (body and
// metadata copy together) and returns its new ETag. It is durable when it
// returns. Errors wrap the container's sentinels (azure.ErrExists for a
// create-only write that found the record, azure.ErrConditionNotMet for a
// stale If-Match, azure.ErrLeaseConflict).
func (x *Index) put(ctx context.Context, name string, v any, cond azure.Cond) (azcore.ETag, error) {
	if len(name) > maxName {
		return "", fmt.Errorf("azmeta: record name %.64s... is %d bytes, over the service's %d", name, len(name), maxName)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("azmeta: record %s: %w", name, err)
	}
	md := map[string]*string{}
	if len(body) <= maxMetaRecord {
		s := base64.StdEncoding.EncodeToString(body)
		md[metaKey] = &s
	}
	r, err := x.ctr.Client().NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
		Metadata:         md,
		AccessConditions: cond.Access(),
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &contentType},
	})
	err = azure.Classify("put", name, err)
	x.m.request("put", err)
	if err != nil {
		return "", err
	}
	if r.ETag == nil {
		return "", nil
	}
	return *r.ETag, nil
}

// del deletes the record name under cond; errors wrap meta.ErrNotFound if
// it does not exist.
func (x *Index) del(ctx context.Context, name string, cond azure.Cond) error {
	if len(name) > maxName {
		return tooLong(name)
	}
	err := x.ctr.Delete(ctx, name, cond)
	x.m.request("delete", err)
	return notFound(err)
}

// item is a record as a listing shows it.
type item struct {
	name string
	etag azcore.ETag
	rec  []byte // the record's JSON from the metadata copy; nil if it had none
}

// list calls fn for the blobs under pfx in lexical order, until fn
// returns false or an error. With records, listings carry the metadata
// copies of the records (see itemJSON); max > 0 asks for pages of that size.
func (x *Index) list(ctx context.Context, pfx string, records bool, max int32, fn func(item) (bool, error)) error {
	opts := &container.ListBlobsFlatOptions{Prefix: &pfx, Include: container.ListBlobsInclude{Metadata: records}}
	if max > 0 {
		opts.MaxResults = &max
	}
	pager := x.ctr.Client().NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		err = azure.Classify("list", pfx, err)
		x.m.request("list", err)
		if err != nil {
			return err
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil {
				continue
			}
			it := item{name: *b.Name}
			if b.Properties != nil && b.Properties.ETag != nil {
				it.etag = *b.Properties.ETag
			}
			it.rec = metaRecord(b.Metadata)
			more, err := fn(it)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// metaRecord returns the record copy of a blob's metadata, or nil.
// Metadata names are case-insensitive; the service may return them in
// another case.
func metaRecord(md map[string]*string) []byte {
	for k, v := range md {
		if v == nil || !strings.EqualFold(k, metaKey) {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(*v)
		if err != nil {
			return nil
		}
		return b
	}
	return nil
}

// itemJSON returns the record of a listed item: its metadata copy, or its
// body when it had none. Errors wrap meta.ErrNotFound if the record went
// since the listing.
func (x *Index) itemJSON(ctx context.Context, it item) ([]byte, error) {
	if it.rec != nil {
		return it.rec, nil
	}
	b, _, err := x.get(ctx, it.name)
	return b, err
}

// each decodes the records under pfx of kind into T and calls fn with the
// parts of each one's name, in lexical order. Records that went since the
// listing, and blobs that are not records, are skipped.
func each[T any](ctx context.Context, x *Index, kind, pfx string, fn func(parts []string, etag azcore.ETag, rec T) error) error {
	return x.list(ctx, pfx, true, 0, func(it item) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		parts, err := parse(kind, it.name)
		if err != nil {
			return true, nil // not ours; leave it alone
		}
		b, err := x.itemJSON(ctx, it)
		if errors.Is(err, meta.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		var rec T
		if err := json.Unmarshal(b, &rec); err != nil {
			return false, fmt.Errorf("azmeta: record %s: %w", it.name, err)
		}
		return true, fn(parts, it.etag, rec)
	})
}

// exists reports whether any blob is under pfx.
func (x *Index) exists(ctx context.Context, pfx string) (bool, error) {
	found := false
	err := x.list(ctx, pfx, false, 1, func(item) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// parallel runs fn(i) for i in [0, n) with at most x.conc at once and
// returns the first error.
func (x *Index) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(x.conc)
	for i := range n {
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}

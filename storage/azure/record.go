package azure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// MaxRecord is the largest record Put writes in one request. Larger blobs
// go through staged blocks (content stores do that); a record is small.
const MaxRecord = 64 << 20

// Cond is a write's preconditions; the zero Cond has none.
type Cond struct {
	// LeaseID must be the blob's active lease: a write carrying an expired,
	// broken or superseded lease fails with ErrLeaseConflict (fencing).
	// A write without it to a leased blob fails the same way.
	LeaseID string
	// IfMatch: the blob must still be at this ETag, else ErrConditionNotMet.
	IfMatch azcore.ETag
	// IfNoneMatch: azcore.ETagAny creates only; an existing blob fails the
	// write with ErrExists.
	IfNoneMatch azcore.ETag
}

// Access is c as the SDK's access conditions.
func (c Cond) Access() *blob.AccessConditions {
	a := &blob.AccessConditions{}
	if c.LeaseID != "" {
		a.LeaseAccessConditions = &blob.LeaseAccessConditions{LeaseID: &c.LeaseID}
	}
	if c.IfMatch != "" || c.IfNoneMatch != "" {
		m := &blob.ModifiedAccessConditions{}
		if c.IfMatch != "" {
			m.IfMatch = &c.IfMatch
		}
		if c.IfNoneMatch != "" {
			m.IfNoneMatch = &c.IfNoneMatch
		}
		a.ModifiedAccessConditions = m
	}
	return a
}

// Props are a blob's properties.
type Props struct {
	Size         int64
	ETag         azcore.ETag
	LastModified time.Time
}

// Put writes body as the whole blob name in one request (Put Blob, which,
// unlike the SDK's UploadBuffer above 256 MiB, always sends the
// conditions) and returns the new ETag. Errors wrap ErrExists,
// ErrConditionNotMet or ErrLeaseConflict when cond decided against it.
func (c *Container) Put(ctx context.Context, name string, body []byte, cond Cond) (azcore.ETag, error) {
	if len(body) > MaxRecord {
		return "", fmt.Errorf("azure: put %s: %d bytes is over the %d of a record", name, len(body), MaxRecord)
	}
	r, err := c.client.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(body)),
		&blockblob.UploadOptions{AccessConditions: cond.Access()})
	if err != nil {
		return "", Classify("put", name, err)
	}
	return Value(r.ETag), nil
}

// Get reads the whole blob name; errors wrap ErrNotFound if it is missing.
func (c *Container) Get(ctx context.Context, name string) ([]byte, Props, error) {
	r, err := c.client.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, Props{}, Classify("get", name, err)
	}
	defer r.Body.Close()
	if r.ContentLength != nil && *r.ContentLength > MaxRecord {
		return nil, Props{}, fmt.Errorf("azure: get %s: %d bytes is over the %d of a record", name, *r.ContentLength, MaxRecord)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, Props{}, Classify("get", name, err)
	}
	return b, Props{Size: int64(len(b)), ETag: Value(r.ETag), LastModified: Value(r.LastModified)}, nil
}

// Stat returns the blob's properties; errors wrap ErrNotFound.
func (c *Container) Stat(ctx context.Context, name string) (Props, error) {
	r, err := c.client.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return Props{}, Classify("stat", name, err)
	}
	var size int64
	if r.ContentLength != nil {
		size = *r.ContentLength
	}
	return Props{Size: size, ETag: Value(r.ETag), LastModified: Value(r.LastModified)}, nil
}

// Delete removes the blob name under cond; errors wrap ErrNotFound if it
// is missing.
func (c *Container) Delete(ctx context.Context, name string, cond Cond) error {
	_, err := c.client.NewBlobClient(name).Delete(ctx, &blob.DeleteOptions{AccessConditions: cond.Access()})
	return Classify("delete", name, err)
}

// Value is *p, or T's zero value if p is nil: an optional field of the
// service's answers, which the SDK gives as pointers.
func Value[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

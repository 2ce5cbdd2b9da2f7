package azstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/airlock/airlock/storage/azure"
)

// stageConcurrency is how many blocks of one blob are staged at once.
const stageConcurrency = 4

// blocks stages a growing local file as uncommitted blocks of one blob,
// block by block as the bytes arrive, so that the commit after the last
// byte has little left to send. Staged blocks are invisible until the
// block list is committed; their IDs start with random bytes of this
// writer, so concurrent writers of the same blob never overwrite each
// other's blocks.
type blocks struct {
	bb     *blockblob.Client
	name   string
	src    io.ReaderAt
	bsize  int64
	prefix [16]byte
	kick   chan struct{} // more bytes, or the end: wake run
	done   chan struct{} // closed when run has returned

	mu      sync.Mutex
	avail   int64 // bytes of src that may be staged
	final   bool  // avail is the blob's size: stage the tail too
	stopped bool  // no more staging (the blob goes up in one request)
	next    int64 // bytes handed to stage requests
	ids     []string
	err     error
}

func newBlocks(bb *blockblob.Client, name string, src io.ReaderAt, bsize int64) (*blocks, error) {
	b := &blocks{bb: bb, name: name, src: src, bsize: bsize, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if _, err := rand.Read(b.prefix[:]); err != nil {
		return nil, fmt.Errorf("azstore: %w", err)
	}
	return b, nil
}

// grow says src now has n bytes (final: and no more).
func (b *blocks) grow(n int64, final bool) {
	b.mu.Lock()
	b.avail, b.final = n, final
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// oneShot reports whether a blob of n bytes should go up in one request:
// nothing was staged and it fits one block. It then stops staging.
func (b *blocks) oneShot(n int64) bool {
	b.mu.Lock()
	if b.next == 0 && n <= b.bsize {
		b.stopped = true
	}
	stopped := b.stopped
	b.mu.Unlock()
	select { // let run see it and return
	case b.kick <- struct{}{}:
	default:
	}
	return stopped
}

func (b *blocks) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// run stages blocks as grow makes them available until the final block
// is staged, staging stops, or ctx ends; then it waits for its requests.
func (b *blocks) run(ctx context.Context) {
	defer close(b.done)
	sem := make(chan struct{}, stageConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		b.mu.Lock()
		for b.err == nil && !b.stopped && (b.next+b.bsize <= b.avail || b.final && b.next < b.avail) {
			off, n := b.next, min(b.bsize, b.avail-b.next)
			if len(b.ids) >= maxBlocks {
				b.err = fmt.Errorf("azstore: %s: more than %d blocks of %d bytes", b.name, maxBlocks, b.bsize)
				break
			}
			id := b.blockID(len(b.ids))
			b.ids = append(b.ids, id)
			b.next += n
			b.mu.Unlock()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				b.fail(ctx.Err())
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				body := streaming.NopCloser(io.NewSectionReader(b.src, off, n))
				if _, err := b.bb.StageBlock(ctx, id, body, nil); err != nil {
					b.fail(azure.Classify("stage block", b.name, err))
				}
			})
			b.mu.Lock()
		}
		end := b.err != nil || b.stopped || b.final && b.next >= b.avail
		b.mu.Unlock()
		if end {
			return
		}
		select {
		case <-b.kick:
		case <-ctx.Done():
			b.fail(ctx.Err())
			return
		}
	}
}

// blockID is the i-th block's ID: the writer's prefix and the index, the
// same length for every block as the service requires.
func (b *blocks) blockID(i int) string {
	var raw [20]byte
	copy(raw[:], b.prefix[:])
	binary.BigEndian.PutUint32(raw[16:], uint32(i))
	return base64.StdEncoding.EncodeToString(raw[:])
}

// finish stages what is left of the n bytes, waits until every block is
// staged and returns their IDs in order.
func (b *blocks) finish(ctx context.Context, n int64) ([]string, error) {
	b.grow(n, true)
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	return b.ids, nil
}

package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/storage/azure"
)

// PeerKeyName is the peer key's record in the shared store.
const PeerKeyName = "cluster/peer.key"

// KeyStore keeps small secrets that every replica must share, each
// created once.
type KeyStore interface {
	// LoadOrCreate returns the record name, creating it with gen's bytes
	// if it does not exist. Replicas racing to create it all get the one
	// that was stored first. It never overwrites a record.
	LoadOrCreate(ctx context.Context, name string, gen func() []byte) ([]byte, error)
}

// LoadPeerKey returns the cluster's credential, creating its random key in
// ks if no replica did yet. It fails if the stored key is not KeySize
// bytes; it never replaces one, which would lock out the other replicas.
func LoadPeerKey(ctx context.Context, ks KeyStore) (*Credential, error) {
	key, err := ks.LoadOrCreate(ctx, PeerKeyName, func() []byte {
		k := make([]byte, KeySize)
		rand.Read(k) // never fails (crypto/rand's contract since Go 1.24)
		return k
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: peer key: %w", err)
	}
	c, err := NewCredential(key)
	if err != nil {
		return nil, fmt.Errorf("%w (stored at %s)", err, PeerKeyName)
	}
	return c, nil
}

// AzureKeys keeps records as blobs of a shared container.
type AzureKeys struct {
	c *azure.Container
}

var _ KeyStore = (*AzureKeys)(nil)

// NewAzureKeys returns the key store on c.
func NewAzureKeys(c *azure.Container) *AzureKeys { return &AzureKeys{c: c} }

// LoadOrCreate reads the blob name; if it is missing it writes gen's bytes
// with If-None-Match: *, and on conflict reads the winner's.
func (a *AzureKeys) LoadOrCreate(ctx context.Context, name string, gen func() []byte) ([]byte, error) {
	b, _, err := a.c.Get(ctx, name)
	if !errors.Is(err, azure.ErrNotFound) {
		return b, err
	}
	v := gen()
	_, err = a.c.Put(ctx, name, v, azure.Cond{IfNoneMatch: azcore.ETagAny})
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, azure.ErrExists):
		b, _, err := a.c.Get(ctx, name)
		return b, err
	}
	return nil, err
}

// MemKeys keeps records in memory: for a single process and for tests.
type MemKeys struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ KeyStore = (*MemKeys)(nil)

// LoadOrCreate returns name's bytes, storing gen's the first time.
func (s *MemKeys) LoadOrCreate(_ context.Context, name string, gen func() []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[name]; ok {
		return append([]byte(nil), b...), nil
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	b := append([]byte(nil), gen()...)
	s.m[name] = b
	return append([]byte(nil), b...), nil
}

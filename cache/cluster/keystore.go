package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
)

// PeerKeyName is the peer key's record in the shared store.
const PeerKeyName = "cluster/peer.key"

// KeyStore keeps small secrets that every replica must share, each
// created once. The metadata index on the shared store keeps them
// (azmeta.Index's Secret, through KeyStoreFunc).
type KeyStore interface {
	// Secret returns the record name, creating it with create's bytes if
	// it does not exist. Replicas racing to create it all get the one that
	// was stored first. It never overwrites a record.
	Secret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
}

// KeyStoreFunc is a function that is a KeyStore.
type KeyStoreFunc func(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)

var _ KeyStore = KeyStoreFunc(nil)

// Secret calls f.
func (f KeyStoreFunc) Secret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	return f(ctx, name, create)
}

// LoadPeerKey returns the cluster's credential, creating its random key in
// ks if no replica did yet. It fails if the stored key is not KeySize
// bytes; it never replaces one, which would lock out the other replicas.
func LoadPeerKey(ctx context.Context, ks KeyStore) (*Credential, error) {
	key, err := loadKey(ctx, ks)
	if err != nil {
		return nil, err
	}
	return NewCredential(key)
}

// loadKey reads (or creates) the peer key and checks its size.
func loadKey(ctx context.Context, ks KeyStore) ([]byte, error) {
	key, err := ks.Secret(ctx, PeerKeyName, func() ([]byte, error) {
		k := make([]byte, KeySize)
		rand.Read(k) // never fails (crypto/rand's contract since Go 1.24)
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: peer key: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("cluster: peer key has %d bytes, want %d (stored at %s)", len(key), KeySize, PeerKeyName)
	}
	return key, nil
}

// MemKeys keeps records in memory: for a single process and for tests.
type MemKeys struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ KeyStore = (*MemKeys)(nil)

// Secret returns name's bytes, storing create's the first time.
func (s *MemKeys) Secret(_ context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[name]; ok {
		return append([]byte(nil), b...), nil
	}
	b, err := create()
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = append([]byte(nil), b...)
	return append([]byte(nil), b...), nil
}

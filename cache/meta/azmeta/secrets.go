package azmeta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/airlock/airlock/storage/azure"
)

// SecretName names a cluster-wide secret: a blob of the container, outside
// the index's meta/ records.
type SecretName string

// The secrets the replicas share.
const (
	// PeerKey is the key of the peer credential (an HMAC key replicas
	// sign their requests to each other with).
	PeerKey SecretName = "cluster/peer.key"
	// SigningKey is the auth token signing key (PKCS#8 PEM), so that a
	// token one replica issued is accepted by every other.
	SigningKey SecretName = "auth/signing.key"
)

// Secrets keeps small cluster-wide secrets that the first replica creates
// and every other reads.
type Secrets interface {
	// Secret returns the secret name, creating it from create() if it does
	// not exist (create-only: If-None-Match: *). Every replica gets the
	// same bytes: one that loses the race to create it returns the
	// winner's. A secret once read is kept for the life of the Index.
	Secret(ctx context.Context, name SecretName, create func() ([]byte, error)) ([]byte, error)
}

// secrets caches the secrets this replica read.
type secrets struct {
	mu sync.Mutex
	m  map[SecretName][]byte
}

// Secret implements Secrets.
func (x *Index) Secret(ctx context.Context, name SecretName, create func() ([]byte, error)) ([]byte, error) {
	if name == "" || strings.HasPrefix(string(name), prefix) {
		return nil, fmt.Errorf("azmeta: secret name %q: empty or inside the index's %s", name, prefix)
	}
	x.keys.mu.Lock()
	defer x.keys.mu.Unlock()
	if b, ok := x.keys.m[name]; ok {
		return b, nil
	}
	b, err := x.loadSecret(ctx, name, create)
	if err != nil {
		return nil, fmt.Errorf("azmeta: secret %s: %w", name, err)
	}
	if x.keys.m == nil {
		x.keys.m = map[SecretName][]byte{}
	}
	x.keys.m[name] = b
	return b, nil
}

func (x *Index) loadSecret(ctx context.Context, name SecretName, create func() ([]byte, error)) ([]byte, error) {
	b, _, err := x.ctr.Get(ctx, string(name))
	x.m.request("get", err)
	if err == nil {
		if len(b) == 0 {
			return nil, errors.New("stored empty")
		}
		return b, nil
	}
	if !errors.Is(err, azure.ErrNotFound) {
		return nil, err
	}
	fresh, err := create()
	if err != nil {
		return nil, err
	}
	if len(fresh) == 0 {
		return nil, errors.New("created empty")
	}
	_, err = x.ctr.Put(ctx, string(name), fresh, azure.Cond{IfNoneMatch: azcore.ETagAny})
	x.m.request("put", err)
	if err == nil {
		return fresh, nil
	}
	if !errors.Is(err, azure.ErrExists) {
		return nil, err
	}
	b, _, err = x.ctr.Get(ctx, string(name)) // another replica created it first
	x.m.request("get", err)
	if err == nil && len(b) == 0 {
		return nil, errors.New("stored empty")
	}
	return b, err
}

package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/storage/azure"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// index is what the server needs of the metadata index.
type index interface {
	meta.Store
	Close() error
}

// backend is where content and metadata live: the filesystem store and the
// badger index under storage.dir, or (storage.driver: azure) a container
// of Azure Blob Storage that replicas share, storage.dir then holding this
// replica's spool.
type backend struct {
	store evict.Store
	index index
	azure *azureBackend // nil: the filesystem
}

// azureBackend is the azure driver's container, stores and, with cluster:,
// this replica's cluster node.
type azureBackend struct {
	ctr   *azure.Container
	store *azstore.Store
	index *azmeta.Index
	node  *cluster.Node // nil: a replica alone
}

// openStorage opens the configured backend. The filesystem's is ready at
// once; Azure's contacts nothing yet (connect does, before the server says
// it is ready), so a replica starts before its storage answers.
func openStorage(cfg *config.Config, log *zap.Logger, reg prometheus.Registerer, o options) (*backend, error) {
	if !cfg.Storage.AzureDriver() {
		store, err := fsstore.New(filepath.Join(cfg.Storage.Dir, "content"))
		if err != nil {
			return nil, err
		}
		idx, err := badgermeta.Open(filepath.Join(cfg.Storage.Dir, "meta"), log, badgermeta.Options{})
		if err != nil {
			return nil, err
		}
		return &backend{store: store, index: idx}, nil
	}
	azopts := o.azure
	if reg != nil {
		azopts = append([]azure.Option{azure.WithMetrics(reg)}, azopts...)
	}
	ctr, err := azure.New(cfg.Storage.AzureContainer(), azopts...)
	if err != nil {
		return nil, &config.Error{Msg: "config: storage.azure: " + err.Error()}
	}
	spool := int64(cfg.Storage.SpoolBytes)
	if spool == 0 {
		spool = config.DefaultSpoolBytes
	}
	store, err := azstore.New(ctr, cfg.Storage.Dir, azstore.WithSpoolLimit(spool), azstore.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	idx, err := azmeta.New(context.Background(), ctr, log.Named("meta"), reg, azmeta.WithDeferredCheck())
	if err != nil {
		return nil, err
	}
	a := &azureBackend{ctr: ctr, store: store, index: idx}
	if cfg.Cluster.Enabled() {
		opts := o.cluster
		if cfg.TLS.Enabled() {
			tc, err := peerTLS(cfg)
			if err != nil {
				return nil, err
			}
			opts = append([]cluster.NodeOption{cluster.WithClientOptions(cluster.WithTLS(tc))}, opts...)
		}
		keys := cluster.KeyStoreFunc(func(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
			return idx.Secret(ctx, azmeta.SecretName(name), create)
		})
		if a.node, err = cluster.NewNode(cfg.Cluster, ctr, keys, log.Named("cluster"), reg, opts...); err != nil {
			return nil, &config.Error{Msg: "config: " + err.Error()}
		}
	}
	return &backend{store: store, index: idx, azure: a}, nil
}

// connect checks once that the store answers: the container exists
// (created if missing), the index can be read, and, in a cluster, the
// peer key is loaded (created by the first replica). Requests are not
// retried: the caller tries again.
func (a *azureBackend) connect(ctx context.Context) error {
	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
	if err := a.ctr.Ensure(ctx); err != nil {
		return err
	}
	if err := a.index.Check(ctx); err != nil {
		return err
	}
	if a.node != nil {
		return a.node.LoadKey(ctx)
	}
	return nil
}

// health asks the container for its properties, once (no retry: the
// next check is the retry): the store answers.
func (a *azureBackend) health(ctx context.Context) error {
	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
	_, err := a.ctr.Client().GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %w", azure.Classify("get container", a.ctr.Name(), err))
	}
	return nil
}

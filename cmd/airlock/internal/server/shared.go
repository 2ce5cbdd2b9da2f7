package server

import (
	"context"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cache/content"
	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/azupload"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/registry/auth/acrauth"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// What makes pushes, garbage collection and auth cluster-wide for a
// replica on the azure driver (storage.driver: azure), for its wiring to
// call:
//
//   - sharedUploads: upload sessions in the shared store; give its engine
//     option to engine.New and run the store's Run beside the collector.
//   - sharedEvictOptions: add them to the collector's options.
//   - sharedAuthOption: pass it to security.

// pushLimits are the push section's caps and idle timeout.
func pushLimits(cfg *config.Config) upload.Limits {
	return upload.Limits{
		Timeout:      time.Duration(cfg.Push.UploadTimeout),
		MaxPerClient: cfg.Push.MaxUploadsPerClient,
		MaxTotal:     cfg.Push.MaxUploads,
	}
}

// sharedUploads keeps upload sessions in the container (records in idx,
// bytes in append blobs), publishing committed blobs into store, the
// content store the engine writes through (the collector's Store(), so
// that the quota holds). It returns the store, whose Run(ctx) must run
// while the server does (it discards sessions idle past
// push.uploadTimeout), and the engine option that uses it in place of the
// push.* engine options.
func sharedUploads(cfg *config.Config, ctr *azure.Container, idx *azmeta.Index, store content.Ingester, log *zap.Logger) (*azupload.Store, engine.Option, error) {
	up, err := azupload.New(ctr, idx, store, log.Named("uploads"), pushLimits(cfg))
	if err != nil {
		return nil, nil, err
	}
	return up, engine.WithUploadStore(up), nil
}

// sharedEvictOptions make the collector one of the replicas' on the
// container: one collection at a time cluster-wide, no blob with a live
// fill record deleted, reads of every replica honoured, the container's
// bytes as the quota's usage.
func sharedEvictOptions(ctr *azure.Container) []evict.Option {
	return []evict.Option{evict.WithCluster(evict.Cluster{Fills: cluster.NewFillRecords(ctr)})}
}

// secretKey is the auth signing key kept as a cluster-wide secret.
type secretKey struct{ s azmeta.Secrets }

func (k secretKey) LoadOrCreate(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	return k.s.Secret(ctx, azmeta.SigningKey, create)
}

// sharedAuthOption keeps the auth token signing key in the shared store
// (auth/signing.key, created once by the first replica), so every replica
// signs and verifies with the same key.
func sharedAuthOption(s azmeta.Secrets) acrauth.Option { return acrauth.WithKeyStore(secretKey{s}) }

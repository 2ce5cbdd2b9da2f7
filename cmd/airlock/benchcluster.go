package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/airlock/airlock/bench"
	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/lab"
	"github.com/airlock/airlock/internal/azurite"
)

// azuriteStart bounds how long Azurite may take to listen.
const azuriteStart = 30 * time.Second

// benchCluster returns what the bench's airlock-cluster target needs: an
// Azurite per run (the lab's, from bin/tools/azurite) and the replicas'
// rendezvous owner. It fails at once, naming the install command, when
// Azurite is missing.
func benchCluster(failoverSize int64) (bench.ClusterOptions, error) {
	bin, err := lab.FindAzurite()
	if err != nil {
		return bench.ClusterOptions{}, fmt.Errorf("target %s: %w", bench.TargetCluster, err)
	}
	start := func(_ context.Context, dir string, log io.Writer) (*bench.Account, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p, err := azurite.Start(bin, dir, "0", log, azuriteStart)
		if err != nil {
			return nil, err
		}
		return &bench.Account{ServiceURL: p.ServiceURL(), Name: azurite.AccountName, Key: azurite.AccountKey, Stop: p.Stop}, nil
	}
	return bench.ClusterOptions{Storage: start, Owner: cluster.Owner, FailoverSize: failoverSize}, nil
}

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

// benchCluster completes the options of the bench's airlock-cluster
// target (as the flags set them) with what it needs: an Azurite per run
// (the lab's, from bin/tools/azurite) and the replicas' rendezvous owner.
// It fails at once, naming the install command, when Azurite is missing.
func benchCluster(co bench.ClusterOptions) (bench.ClusterOptions, error) {
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
	co.Storage, co.Owner = start, cluster.Owner
	return co, nil
}

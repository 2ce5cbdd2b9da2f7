package azstate_test

import (
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/azstate"
	"github.com/airlock/airlock/deploy/storetest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"go.uber.org/zap"
)

// Idle keep-alive connections of the SDK's clients outlive tests.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.IdleConns()...) }

// Two replicas' stores on one container pass the suite of every
// deploy.Store, the exclusive section included.
func TestStore(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	storetest.Run(t, func(t *testing.T) (deploy.Store, deploy.Store) {
		name := azuritetest.ContainerName("ctl")
		return azstate.New(azuretest.Open(t, srv, name), zap.NewNop()), azstate.New(azuretest.Open(t, srv, name), zap.NewNop())
	})
}

package azstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/azstate"
	"github.com/airlock/airlock/deploy/storetest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// Idle keep-alive connections of the SDK's clients outlive tests.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.IdleConns()...) }

// newContainer names a new container on srv.
func newContainer() string {
	var b [6]byte
	rand.Read(b[:])
	return "ctl" + hex.EncodeToString(b[:])
}

// open is one replica's client of container name on srv.
func open(t *testing.T, srv *azuritetest.Server, name string) *azure.Container {
	t.Helper()
	ctr, err := azure.Open(context.Background(), azure.Config{ServiceURL: srv.ServiceURL, AccountName: srv.AccountName, AccountKey: srv.AccountKey, Container: name})
	if err != nil {
		t.Fatal(err)
	}
	return ctr
}

// Two replicas' stores on one container pass the suite of every
// deploy.Store, the exclusive section included.
func TestStore(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	storetest.Run(t, func(t *testing.T) (deploy.Store, deploy.Store) {
		name := newContainer()
		return azstate.New(open(t, srv, name), zap.NewNop()), azstate.New(open(t, srv, name), zap.NewNop())
	})
}

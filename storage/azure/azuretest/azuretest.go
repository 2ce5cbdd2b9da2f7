// Package azuretest opens containers of storage/azure on a test's Azurite
// (internal/azuritetest) for the tests of the packages built on it.
package azuretest

import (
	"context"
	"testing"

	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/storage/azure"
)

// Config is the configuration of container name on srv, with the
// development account's key.
func Config(srv *azuritetest.Server, name string) azure.Config {
	return azure.Config{ServiceURL: srv.ServiceURL, AccountName: srv.AccountName, AccountKey: srv.AccountKey, Container: name}
}

// Open is a client of container name on srv (created if it does not
// exist), with its own connections as another replica's would be; the
// test ends if it cannot be opened.
func Open(t testing.TB, srv *azuritetest.Server, name string, opts ...azure.Option) *azure.Container {
	t.Helper()
	c, err := azure.Open(context.Background(), Config(srv, name), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// New opens a new container on srv named prefix and random digits.
func New(t testing.TB, srv *azuritetest.Server, prefix string, opts ...azure.Option) *azure.Container {
	t.Helper()
	return Open(t, srv, azuritetest.ContainerName(prefix), opts...)
}

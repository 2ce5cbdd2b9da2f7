// Package azuretest opens containers of storage/azure on a test's Azurite
// (internal/azuritetest) for the tests of the packages built on it.
package azuretest

import (
	"context"
	"net/http"
	"strings"
	"sync"
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

// Recorder is a transport (azure.WithTransport) that records each request
// a client sends as "METHOD name", name the blob's path in the container
// with its comp= query if any ("PUT fills/x?comp=lease").
type Recorder struct {
	mu   sync.Mutex
	sent []string
}

// Do implements policy.Transporter.
func (r *Recorder) Do(req *http.Request) (*http.Response, error) {
	_, name, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/") // account/
	_, name, _ = strings.Cut(name, "/")                                   // container/
	if comp := req.URL.Query().Get("comp"); comp != "" {
		name += "?comp=" + comp
	}
	r.mu.Lock()
	r.sent = append(r.sent, req.Method+" "+name)
	r.mu.Unlock()
	return http.DefaultClient.Do(req)
}

// Take returns the requests recorded since the last Take.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

// Package servertest serves an airlock server (cmd/airlock/internal/server)
// in a test's own process. Only tests import it.
package servertest

import (
	"context"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/airlock/internal/server"
)

// timeout bounds the server's start and its stop.
const timeout = 30 * time.Second

// Serve serves srv until the test ends, when it must stop cleanly, and
// returns srv once it is ready; name says which server in messages.
func Serve(t testing.TB, name string, srv *server.Server) *server.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(timeout):
			t.Errorf("%s did not stop", name)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-served:
		t.Fatalf("%s stopped before it was ready: %v", name, err)
	case <-time.After(timeout):
		t.Fatalf("%s not ready after %s", name, timeout)
	}
	return srv
}

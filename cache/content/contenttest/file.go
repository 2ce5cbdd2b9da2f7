package contenttest

import (
	"context"
	"os"
	"testing"

	"github.com/airlock/airlock/cache/content"
	"github.com/opencontainers/go-digest"
)

// OpensFile fails the test unless p opens d as an *os.File, the file a
// server sends with sendfile; when says at which point of the test.
func OpensFile(t testing.TB, p content.Provider, d digest.Digest, when string) {
	t.Helper()
	rc, _, err := p.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("%s: Open returned %T, want *os.File", when, rc)
	}
}

package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock/airlock/cache"
	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/registry/auth/acrauth"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"
)

// oneBlob is a cache.Source holding one blob of repository team/app.
type oneBlob struct{ body []byte }

func (s oneBlob) Blob(_ context.Context, repo string, d digest.Digest, head bool) (*cache.Blob, error) {
	if repo != "team/app" || d != digest.FromBytes(s.body) {
		return nil, fmt.Errorf("%w: %s", cache.ErrBlobUnknown, d)
	}
	b := &cache.Blob{Digest: d, Size: int64(len(s.body)), ModTime: time.Unix(1, 0)}
	if !head {
		b.Content = nopCloser{bytes.NewReader(s.body)}
	}
	return b, nil
}

func (oneBlob) Manifest(context.Context, string, string, bool) (*cache.Manifest, error) {
	return nil, cache.ErrManifestUnknown
}

func (oneBlob) Tags(context.Context, string, string, int) ([]string, bool, error) {
	return nil, false, cache.ErrNameUnknown
}

func (oneBlob) Catalog(context.Context, string, int) ([]string, bool, error) { return nil, false, nil }

func (oneBlob) Referrers(context.Context, string, digest.Digest, string) (*cache.Referrers, error) {
	return &cache.Referrers{Body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// The server wiring the package doc describes: the registry with client
// auth in front, the peer surface as a public route of it, and behind the
// peer surface the registry without client auth.
func TestPeerHeadersOpenNoClientRoute(t *testing.T) {
	t.Parallel()
	log := zaptest.NewLogger(t)
	src := oneBlob{body: []byte("layer bytes")}
	d := digest.FromBytes(src.body)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := acrauth.New(acrauth.Config{
		Users:   []acrauth.User{{Name: "alice", PasswordHash: string(hash)}},
		KeyFile: filepath.Join(t.TempDir(), "token.key"),
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := cluster.NewCredential(bytes.Repeat([]byte{7}, cluster.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	self := srv.Listener.Addr().String()
	inner, err := registry.New(src, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := cluster.PeerHandler(inner, cred, self, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	front, err := registry.New(src, log, prometheus.NewRegistry(), registry.WithAuth(authz),
		registry.WithPublicRoute(cluster.PeerPrefix+"/", "peer", peer))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = front
	srv.Start()
	defer srv.Close()

	get := func(path string, prepare func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		prepare(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	blob := "/v2/team/app/blobs/" + d.String()
	nothing := func(*http.Request) {}
	user := func(r *http.Request) { r.SetBasicAuth("alice", "secret") }
	// A client holding the peer key itself, or replaying a peer's headers.
	peerSigned := func(path string) func(*http.Request) {
		return func(r *http.Request) {
			r.URL.Path = path
			cred.Sign(r, self, 1)
		}
	}
	for _, tc := range []struct {
		name    string
		path    string
		prepare func(*http.Request)
		status  int
	}{
		{"client without credentials", blob, nothing, 401},
		{"client with peer headers on a client route", blob, peerSigned(blob), 401},
		{"client replaying a peer request's headers", blob, func(r *http.Request) {
			peerSigned(cluster.PeerPrefix + blob)(r)
			r.URL.Path = blob
		}, 401},
		{"user", blob, user, 200},
		{"client on the peer route", cluster.PeerPrefix + blob, nothing, 401},
		{"user on the peer route", cluster.PeerPrefix + blob, user, 401},
		{"peer", cluster.PeerPrefix + blob, peerSigned(cluster.PeerPrefix + blob), 200},
	} {
		status, body := get(tc.path, tc.prepare)
		if status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.status)
		}
		if status == 200 && body != string(src.body) {
			t.Errorf("%s: body %q", tc.name, body)
		}
	}

	// The peer client relays it as a pull, Range and all.
	c, err := cluster.NewClient(cred, "10.0.0.1:5000", nopReporter{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	resp, err := c.Relay(t.Context(), self, http.MethodGet, blob, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, _ := io.ReadAll(resp.Body); string(got) != "bytes" {
		t.Fatalf("relayed %q", got)
	}
}

type nopReporter struct{}

func (nopReporter) MarkDown(string) {}

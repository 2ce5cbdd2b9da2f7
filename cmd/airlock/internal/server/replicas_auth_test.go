package server

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/selfsigned"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Peers trust only peers. With auth on, the peer surface needs the peer
// signature whatever credentials a client shows, so it is no way around
// auth; and a pull relayed to the owner is authorized on the replica the
// client talks to, before anything is relayed.
func TestReplicasPeersTrustOnlyPeers(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	auth := &config.Auth{
		Users:  []config.AuthUser{{Name: "alice", PasswordHash: string(hash)}},
		Tokens: []config.AuthToken{{Name: "other", PasswordHash: string(hash), Scopes: []config.AuthScope{{Repositories: []string{"other/*"}, Actions: []string{"pull"}}}}},
	}
	s := newReplicaSet(t, 2)
	for i := range 2 {
		cfg := s.config(i, nil)
		cfg.Auth = auth
		s.start(i, cfg)
	}
	s.settle(0, 1)
	repo, d := s.blobOwnedBy(0, 64<<10, 0, 1)
	blob := "/v2/" + repo + "/blobs/" + d.String()
	send := func(url string, prepare func(*http.Request)) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		prepare(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	as := func(user string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, "secret") }
	}
	forged := func(r *http.Request) {
		r.SetBasicAuth("alice", "secret")
		key := make([]byte, cluster.KeySize)
		rand.Read(key)
		r.Header.Set(cluster.HeaderPeer, s.peers[1])
		r.Header.Set(cluster.HeaderTime, strconv.FormatInt(time.Now().Unix(), 10))
		r.Header.Set(cluster.HeaderHop, "1")
		r.Header.Set(cluster.HeaderSignature, "v1="+base64.RawURLEncoding.EncodeToString(key))
	}

	// A token without pull on the repository: refused by the replica it
	// talks to, which relays nothing.
	if code := send(s.url(1)+blob, as("other")); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("a client without pull through a non-owner: %d", code)
	}
	if code := send(s.url(1)+blob, func(*http.Request) {}); code != http.StatusUnauthorized {
		t.Fatalf("an anonymous client through a non-owner: %d", code)
	}
	if n := s.metric(1, "airlock_cluster_relayed_bytes_total") + float64(s.up.Total()); n != 0 {
		t.Fatalf("a refused pull was relayed or fetched (%v bytes relayed, %d upstream requests)", s.metric(1, "airlock_cluster_relayed_bytes_total"), s.up.Total())
	}
	// The peer surface, straight: a user's credentials, a forged signature
	// or a client's headers copied onto it never open it.
	for name, prepare := range map[string]func(*http.Request){"user": as("alice"), "forged signature": forged} {
		for i := range 2 {
			if code := send(s.url(i)+cluster.PeerPrefix+blob, prepare); code != http.StatusUnauthorized {
				t.Errorf("%s on replica %d's peer surface: %d, want 401", name, i, code)
			}
		}
	}
	if n := s.up.Total(); n != 0 {
		t.Fatalf("the peer surface fetched from the upstream for a client: %d requests", n)
	}
	// A client allowed to pull, through the non-owner: relayed.
	if code := send(s.url(1)+blob, as("alice")); code != http.StatusOK {
		t.Fatalf("alice through the non-owner: %d", code)
	}
	if s.metric(1, "airlock_cluster_relayed_bytes_total") == 0 || s.up.Count("GET", "/blobs/"+d.String()) != 1 {
		t.Fatal("alice's pull was not relayed from the owner")
	}
}

// Replicas serving tls: reach each other over HTTPS, trusting the
// certificate they share: they see each other live and relay.
func TestReplicasOverTLS(t *testing.T) {
	t.Parallel()
	files, err := selfsigned.Ensure(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := newReplicaSet(t, 2)
	for i := range 2 {
		cfg := s.config(i, nil)
		cfg.TLS = config.TLS{Cert: files.Cert, Key: files.Key}
		s.start(i, cfg)
	}
	s.settle(0, 1)
	repo, d := s.blobOwnedBy(0, 64<<10, 0, 1)
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + s.peers[1] + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || digest.FromBytes(b) != d {
		t.Fatalf("through the non-owner over HTTPS: %d, %d bytes, %v", resp.StatusCode, len(b), err)
	}
	if s.metric(1, "airlock_cluster_relayed_bytes_total") == 0 {
		t.Fatal("not relayed")
	}
}

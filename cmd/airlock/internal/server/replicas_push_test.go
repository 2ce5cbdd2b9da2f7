package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Push anywhere, pull anywhere, through serve's wiring of the azure
// driver: a token issued by r0 is accepted by r1 and r2 (one signing key,
// in the container); a blob's upload starts on r0 (POST, PATCH), goes on
// on r1 (PATCH) and is committed on r2 (PUT); its manifest is pushed to
// r1; r2 serves the image, and the push's session is gone from the store.
func TestReplicasPushAnywhere(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := newReplicaSet(t, 3)
	for i := range 3 {
		cfg := s.config(i, nil)
		cfg.Auth = &config.Auth{Users: []config.AuthUser{{Name: "alice", PasswordHash: string(hash)}}, Service: "airlock.test"}
		s.start(i, cfg)
	}
	s.settle(0, 1, 2)

	token := passwordToken(t, http.DefaultClient, s.url(0), "alice", "secret", "repository:team/pushed:pull,push")
	do := func(i int, method, path string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		u := path
		if u[0] == '/' {
			u = s.url(i) + path
		} else { // a Location: the same path on replica i
			p, err := url.Parse(path)
			if err != nil {
				t.Fatal(err)
			}
			u = s.url(i) + p.RequestURI()
		}
		req, _ := http.NewRequest(method, u, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		for j := 0; j+1 < len(hdr); j += 2 {
			req.Header.Set(hdr[j], hdr[j+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 3 {
		if resp := do(i, http.MethodGet, "/v2/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("replica %d refuses r0's token: %d", i, resp.StatusCode)
		}
	}
	if _, _, err := s.rs[0].srv.ops.azure.ctr.Get(context.Background(), string(azmeta.SigningKey)); err != nil {
		t.Fatalf("the signing key is not in the container: %v", err)
	}

	layer := bytes.Repeat([]byte("pushed through three replicas "), 4096)
	ld := digest.FromBytes(layer)
	half := len(layer) / 2
	resp := do(0, http.MethodPost, "/v2/team/pushed/blobs/uploads/", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST on r0: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	chunk := func(i int, from, to int) {
		t.Helper()
		resp := do(i, http.MethodPatch, loc, layer[from:to],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", from, to-1))
		if resp.StatusCode != http.StatusAccepted {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("PATCH %d-%d on r%d: %d %s", from, to-1, i, resp.StatusCode, b)
		}
		loc = resp.Header.Get("Location")
	}
	chunk(0, 0, half)
	chunk(1, half, len(layer))
	put, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := put.Query()
	q.Set("digest", ld.String())
	put.RawQuery = q.Encode()
	if resp := do(2, http.MethodPut, put.String(), nil); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT on r2: %d %s", resp.StatusCode, b)
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := digest.FromBytes(cfgBlob)
	if resp := do(1, http.MethodPost, "/v2/team/pushed/blobs/uploads/?digest="+cd.String(), cfgBlob); resp.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic config push on r1: %d", resp.StatusCode)
	}
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`, cd, len(cfgBlob), ld, len(layer))
	if resp := do(1, http.MethodPut, "/v2/team/pushed/manifests/v1", []byte(man), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("manifest on r1: %d %s", resp.StatusCode, b)
	}
	resp = do(2, http.MethodGet, "/v2/team/pushed/manifests/v1", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != man {
		t.Fatalf("manifest from r2: %d", resp.StatusCode)
	}
	resp = do(2, http.MethodGet, "/v2/team/pushed/blobs/"+ld.String(), nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || digest.FromBytes(b) != ld {
		t.Fatalf("layer from r2: %d, %d bytes", resp.StatusCode, len(b))
	}
	if n := s.up.Total(); n != 0 {
		t.Fatalf("pushed content asked of the upstream: %d requests", n)
	}
	sessions := 0
	err = s.rs[0].srv.ops.azure.index.EachUpload(context.Background(), func(string, azmeta.Upload) error { sessions++; return nil })
	if err != nil || sessions != 0 {
		t.Fatalf("upload sessions left in the store: %d %v", sessions, err)
	}
}

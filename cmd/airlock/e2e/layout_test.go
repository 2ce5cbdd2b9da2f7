package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fileDigest returns "sha256:<hex>" of a file.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// readLayout reads an OCI image layout a client wrote: the digest of its
// single index.json entry, and every blob, each checked to hash to its name.
func readLayout(t *testing.T, dir string) (string, map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("%s/index.json: %v, want one entry:\n%s", dir, err, b)
	}
	return idx.Manifests[0].Digest.String(), hashedFiles(t, filepath.Join(dir, "blobs", "sha256"), "")
}

// hashedFiles returns the digests of the files in dir named <hex><suffix>,
// failing the test if one does not hash to its name.
func hashedFiles(t *testing.T, dir, suffix string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, suffix) || len(strings.TrimSuffix(name, suffix)) != 64 {
			continue
		}
		want := "sha256:" + strings.TrimSuffix(name, suffix)
		if got := fileDigest(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s hashes to %s", filepath.Join(dir, name), got)
		}
		out[want] = true
	}
	return out
}

// sameSet reports the differences between two digest sets.
func sameSet(got, want map[string]bool) error {
	var missing, extra []string
	for d := range want {
		if !got[d] {
			missing = append(missing, d)
		}
	}
	for d := range got {
		if !want[d] {
			extra = append(extra, d)
		}
	}
	if len(missing)+len(extra) > 0 {
		return fmt.Errorf("missing %v, unexpected %v", missing, extra)
	}
	return nil
}

// marReferrers asks the emulator itself (anonymous token, as MAR) for the
// referrers of repo@digest.
func marReferrers(t *testing.T, ctx context.Context, m *marServer, repo, digest string) []v1.Descriptor {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	get := func(url, token string) []byte {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", url, resp.Status, err)
		}
		return b
	}
	var tok struct {
		Token string `json:"access_token"`
	}
	if err := json.Unmarshal(get(m.url+"/oauth2/token?scope=repository:"+repo+":pull", ""), &tok); err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(get(m.url+"/v2/"+repo+"/referrers/"+digest, tok.Token), &idx); err != nil {
		t.Fatal(err)
	}
	return idx.Manifests
}

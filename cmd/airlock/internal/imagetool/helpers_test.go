package imagetool

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/configtest"
	"github.com/airlock/airlock/cmd/airlock/internal/server"
	"github.com/airlock/airlock/cmd/airlock/internal/servertest"
	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/deploy/adminapi"
	"github.com/airlock/airlock/deploy/controlcli"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// writeConfig writes an airlock configuration in a temp dir: listening on
// listen, storage in dir, mcr.microsoft.com reached at upstream, rule
// aks-managed-mcr.
func writeConfig(t *testing.T, listen, dir, upstream string) string {
	t.Helper()
	return configtest.Write(t, configtest.Serve(listen, dir, upstream, configtest.MCRRule))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serve runs airlock with the configuration at path until the test ends
// and returns it once it is ready.
func serve(t *testing.T, path string) *server.Server {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Serve(t, "serve", srv)
}

// cli is one command's output and error.
type cli struct {
	out, errOut string
	err         error
}

func (c cli) String() string {
	return fmt.Sprintf("err %v\nstdout:\n%sstderr:\n%s", c.err, c.out, c.errOut)
}

// clusterImages lists bootstrap images as airlock warm --cluster does.
func clusterImages(base string, hc *http.Client) BootstrapLister {
	return controlcli.Bootstrap{Client: adminapi.NewClient(base, hc), Images: deploy.NodeBootstrapImages}
}

// runWarm runs airlock warm with so on list (a file) or cluster.
func runWarm(t *testing.T, so SourceOptions, list, cluster, pin string) cli {
	t.Helper()
	if so.Concurrency == 0 {
		so.Concurrency = 4
	}
	var stdout, stderr bytes.Buffer
	err := RunWarm(context.Background(), &so, list, cluster, pin, clusterImages, strings.NewReader(""), &stdout, &stderr)
	return cli{stdout.String(), stderr.String(), err}
}

// runExport runs airlock bundle export with so.
func runExport(t *testing.T, so SourceOptions, list, out string) cli {
	t.Helper()
	if so.Concurrency == 0 {
		so.Concurrency = 4
	}
	var stdout, stderr bytes.Buffer
	err := RunExport(context.Background(), &so, list, out, strings.NewReader(""), &stdout, &stderr)
	return cli{stdout.String(), stderr.String(), err}
}

// importBundleFile runs airlock bundle import.
func importBundleFile(t *testing.T, cfg, path string, asPushed bool) cli {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := RunImport(context.Background(), cfg, path, asPushed, strings.NewReader(""), &stdout, &stderr)
	return cli{stdout.String(), stderr.String(), err}
}

// pull pulls ref (host/repo:tag) completely, every platform, checking
// every digest.
func pull(ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	d, err := remote.Get(r)
	if err != nil {
		return err
	}
	if d.MediaType.IsIndex() {
		idx, err := d.ImageIndex()
		if err != nil {
			return err
		}
		return validate.Index(idx)
	}
	img, err := d.Image()
	if err != nil {
		return err
	}
	return validate.Image(img)
}

func readBundleIndex(t *testing.T, path string) ocispec.Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no index.json: %v", err)
		}
		if h.Name == "index.json" {
			var idx ocispec.Index
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				t.Fatal(err)
			}
			return idx
		}
	}
}

// corruptEntry copies the tarball src to dst with one byte of entry name
// flipped.
func corruptEntry(t *testing.T, src, dst, name string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == name {
			b[len(b)/2] ^= 0xff
			found = true
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	if !found {
		t.Fatalf("%s not in the bundle", name)
	}
	writeFile(t, dst, buf.String())
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package imagetool

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/cache/bundle"
	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/meta/badgermeta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/storage/azure"
	"go.uber.org/zap"
)

// RunImport is airlock bundle import: it imports the bundle at path ("-":
// stdin) into the storage of the configuration at cfgPath and prints what
// it loaded.
func RunImport(ctx context.Context, cfgPath, path string, asPushed bool, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	set, err := cfg.RuleSet()
	if err != nil {
		return err
	}
	rep, err := importBundle(ctx, cfg, path, stdin, importTarget(set, asPushed))
	if err != nil {
		return err
	}
	// The report's blobs are every blob of the tarball, its manifests among
	// them: count them as export does.
	c := counts{images: rep.Images, manifests: rep.Manifests, blobs: rep.Blobs - rep.Manifests, bytes: rep.Bytes}
	fmt.Fprintf(stdout, "imported %d images (%d cached under rules, %d pushed): %s\n", rep.Images, rep.Cached, rep.Pushed, c.contents())
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "skipped %s: no reference name in index.json\n", s)
	}
	return nil
}

// importBundle loads a bundle into the storage of cfg. On the filesystem
// the server must not be running: the index is opened directly. A shared
// store (storage.driver: azure) takes the import while replicas serve.
func importBundle(ctx context.Context, cfg *config.Config, path string, stdin io.Reader, m bundle.Mapper) (bundle.Report, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return bundle.Report{}, err
		}
		defer f.Close()
		r = f
	}
	if cfg.Storage.AzureDriver() {
		return importShared(ctx, cfg, r, m)
	}
	store, err := fsstore.New(filepath.Join(cfg.Storage.Dir, "content"))
	if err != nil {
		return bundle.Report{}, err
	}
	index, err := badgermeta.Open(filepath.Join(cfg.Storage.Dir, "meta"), zap.NewNop(), badgermeta.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			err = fmt.Errorf("%w (is airlock serve running on %s? stop it first)", err, cfg.Storage.Dir)
		}
		return bundle.Report{}, err
	}
	rep, err := bundle.Import(ctx, r, store, index, m, time.Now())
	if cerr := index.Close(); err == nil {
		err = cerr
	}
	return rep, err
}

// importShared loads a bundle into the container of storage.azure. Its
// local files (blobs being verified) go to a temporary directory: a
// replica serving on this machine keeps its storage.dir to itself.
func importShared(ctx context.Context, cfg *config.Config, r io.Reader, m bundle.Mapper) (bundle.Report, error) {
	ctr, err := azure.Open(ctx, cfg.Storage.AzureContainer())
	if err != nil {
		return bundle.Report{}, fmt.Errorf("storage.azure: %w", err)
	}
	tmp, err := os.MkdirTemp("", "airlock-import-")
	if err != nil {
		return bundle.Report{}, err
	}
	defer os.RemoveAll(tmp)
	store, err := azstore.New(ctr, tmp, azstore.WithSpoolLimit(0))
	if err != nil {
		return bundle.Report{}, err
	}
	index, err := azmeta.New(ctx, ctr, zap.NewNop(), nil)
	if err != nil {
		return bundle.Report{}, err
	}
	defer index.Close()
	return bundle.Import(ctx, r, store, index, m, time.Now())
}

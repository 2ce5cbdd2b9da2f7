package memupload_test

import (
	"testing"

	"github.com/airlock/airlock/cache/content/fsstore"
	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/memupload"
	"github.com/airlock/airlock/cache/upload/uploadtest"
	"github.com/airlock/airlock/internal/leaktest"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestSuite(t *testing.T) {
	uploadtest.Run(t, func(t *testing.T, l upload.Limits) uploadtest.Env {
		fs, err := fsstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return uploadtest.Env{Stores: []upload.Store{memupload.New(fs, zap.NewNop(), l)}, Content: fs}
	})
}

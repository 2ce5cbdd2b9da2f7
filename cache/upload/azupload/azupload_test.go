package azupload_test

import (
	"testing"

	"github.com/airlock/airlock/cache/upload"
	"github.com/airlock/airlock/cache/upload/azupload"
	"github.com/airlock/airlock/cache/upload/uploadtest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/leaktest"
)

// Idle keep-alive connections of the SDK's clients outlive tests.
func TestMain(m *testing.M) { leaktest.Main(m, leaktest.IdleConns()...) }

// TestAzurite runs everything that needs the service on one Azurite, each
// subtest on its own container.
func TestAzurite(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	suite := func(opts ...azupload.Option) func(t *testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			uploadtest.Run(t, func(t *testing.T, l upload.Limits) uploadtest.Env {
				rs := replicas(t, srv, 3, l, opts...)
				env := uploadtest.Env{Content: rs[0].content}
				for _, r := range rs {
					env.Stores = append(env.Stores, r.uploads)
				}
				return env
			})
		}
	}
	// Three replicas; commits copy inside the account, chunks go in
	// blocks smaller than the suite's chunks.
	t.Run("Suite/Copy", suite(azupload.WithBlockSize(64<<10)))
	// Commits stream the bytes through the replica, as when the account
	// refuses copies.
	t.Run("Suite/Stream", suite(azupload.WithBlockSize(10_000), azupload.WithoutServerCopy()))
	azuritetest.Tests{
		"Registry/PushAnywhere":        testPushAnywhere,
		"Registry/ConflictingPatch":    testConflictingPatch,
		"Registry/DeadReplicaMidChunk": testDeadReplicaMidChunk,
		"Registry/Expiry":              testExpiryAcrossReplicas,
		"CommitReadsNothing":           testCommitReadsNothing,
		"IdleClock":                    testIdleClock,
		"Conformance":                  testConformance,
	}.Run(t, srv)
}

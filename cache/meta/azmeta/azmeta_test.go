package azmeta_test

import (
	"context"
	"testing"
	"time"

	"github.com/airlock/airlock/cache/meta/azmeta"
	"github.com/airlock/airlock/cache/meta/metatest"
	"github.com/airlock/airlock/internal/azuritetest"
	"github.com/airlock/airlock/internal/leaktest"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/storage/azure/azuretest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// No test may leave a goroutine behind: lease keepers, shared reads and
// the SDK's connections (closed with Azurite) all end with their test.
func TestMain(m *testing.M) { leaktest.Main(m) }

// testSettle is the settle time of the tests' indexes: long enough for a
// write to Azurite on a busy machine, short enough to keep the suite fast.
const testSettle = 300 * time.Millisecond

// open returns an index on ctr with the tests' settle time; reg may be
// nil.
func open(t testing.TB, ctr *azure.Container, reg prometheus.Registerer, opts ...azmeta.Option) *azmeta.Index {
	t.Helper()
	x, err := azmeta.New(context.Background(), ctr, zap.NewNop(), reg, append([]azmeta.Option{azmeta.WithSettle(testSettle)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() }) // waits for its reads ahead
	return x
}

// TestAzurite runs everything that needs the service on one Azurite,
// each subtest on its own container: the shared suite, two replicas on one
// container, and what one replica does beyond the contract.
func TestAzurite(t *testing.T) {
	t.Parallel()
	srv := azuritetest.Start(t)
	t.Run("Suite", func(t *testing.T) {
		t.Parallel()
		metatest.Run(t, func(t *testing.T) metatest.Open {
			ctr := azuretest.New(t, srv, "m")
			return func(t *testing.T) metatest.Index { return open(t, ctr, prometheus.NewRegistry()) }
		})
	})
	azuritetest.Tests{
		"Replicas/SeeEachOthersWrites":             testSeeEachOther,
		"Replicas/ConcurrentWritersOnBoth":         testConcurrentReplicas,
		"Replicas/ExclusiveHoldsBackOtherReplicas": testExclusiveAcross,
		"Replicas/LinkStraddlingExclusive":         testLinkStraddling,
		"Replicas/AnnounceLetsLinksGo":             testAnnounceLetsLinksGo,
		"Replicas/LinkStraddlingHeld":              testLinkStraddlingHeld,
		"Replicas/ExclusiveOneAtATime":             testExclusiveOneAtATime,
		"Replicas/DeadHolder":                      testDeadHolder,
		"Replicas/ExclusiveLeaseLost":              testLeaseLost,
		"ReadCache":                                testReadCache,
		"ReadCache/OwnLinksKept":                   testOwnLinksKept,
		"ReadCache/PeerLinked":                     testPeerLinked,
		"ReadCache/TagsGeneration":                 testTagsGeneration,
		"ReadCache/TagsGenerationUnreadable":       testTagsGenerationUnreadable,
		"ReadCache/TagsRefreshed":                  testTagsRefreshed,
		"ReadCache/ReadAhead":                      testReadAhead,
		"WalkReadsListings":                        testWalkReadsListings,
		"Uploads":                                  testUploads,
		"Secrets":                                  testSecrets,
		"LongNames":                                testLongNames,
	}.Run(t, srv)
}

package deploy_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock/airlock/deploy"
)

// The reconcile loop repairs at start and then every interval, counts its
// repairs, and stops with its context.
func TestReconcileLoop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		ctx, cancel := context.WithCancel(context.Background())
		must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, isolated("aks1")))
		must[*deploy.DeleteReport](t)(e.svc.DeleteRegistry(ctx, boundName))
		done := make(chan struct{})
		go func() {
			e.svc.Run(ctx, time.Minute)
			close(done)
		}()
		synctest.Wait()
		if _, err := e.svc.Registry(ctx, boundName); err != nil {
			t.Fatalf("first pass did not restore the registry: %v", err)
		}
		ok(t, e.svc.DeleteCacheRule(ctx, boundName, deploy.RequiredRuleName))
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if _, ok := e.eng.serves(pauseRepo); ok {
			t.Fatal("repaired before the interval")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := e.eng.serves(pauseRepo); !ok {
			t.Fatal("the loop did not restore the rule after one interval")
		}
		if e.repairs("registry", "restored") != 1 || e.repairs("cacheRule", "restored") != 1 {
			t.Fatalf("repairs counted: registry %v, rule %v", e.repairs("registry", "restored"), e.repairs("cacheRule", "restored"))
		}
		cancel()
		<-done
	})
}

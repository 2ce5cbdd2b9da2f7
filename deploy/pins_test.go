package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airlock/airlock/deploy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// pinner records what the control module wants pinned; while down (not
// nil), its syncs fail with down.
type pinner struct {
	mu   sync.Mutex
	pins map[string][]string
	down error
}

func (p *pinner) SyncPins(prefix string, want map[string][]string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down != nil {
		return p.down
	}
	for owner := range p.pins {
		if strings.HasPrefix(owner, prefix) {
			delete(p.pins, owner)
		}
	}
	for owner, refs := range want {
		p.pins[owner] = refs
	}
	return nil
}

func (p *pinner) of(owner string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pins[owner]
}

func bootstrapFor(version string) ([]string, error) {
	if !strings.HasPrefix(version, "1.3") {
		return nil, fmt.Errorf("no bootstrap set for %s", version)
	}
	return []string{pauseRepo + ":3.10", "aks-managed-repository/oss/kubernetes/kube-proxy:v" + version}, nil
}

// The bootstrap images of a cluster whose nodes pull from this registry are
// pinned (never evicted) for as long as a node may need them.
func TestBootstrapContentPinned(t *testing.T) {
	t.Parallel()
	p := &pinner{pins: map[string][]string{"someone-else": {"x:y"}}}
	e := newEnv(t, func(b *deploy.Binding) { b.Pins, b.Bootstrap = p, bootstrapFor })
	ctx := context.Background()
	spec := isolated("aks1")
	spec.KubernetesVersion = "1.31.3"
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, spec))
	want := []string{"aks-managed-repository/oss/kubernetes/kube-proxy:v1.31.3", pauseRepo + ":3.10"} // sorted
	if got := p.of("cluster/aks1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("pins of cluster/aks1: %v, want %v", got, want)
	}
	// Switching to Direct keeps them until the nodes are reimaged.
	must[*deploy.ClusterInfo](t)(e.svc.UpdateCluster(ctx, "aks1", deploy.ClusterUpdate{ArtifactSource: "Direct", OutboundType: "loadBalancer"}))
	if got := p.of("cluster/aks1"); len(got) != 2 {
		t.Fatalf("pins dropped before the nodes were reimaged: %v", got)
	}
	must[*deploy.ClusterInfo](t)(e.svc.UpgradeNodeImage(ctx, "aks1", ""))
	if got := p.of("cluster/aks1"); got != nil {
		t.Fatalf("pins kept after every node left the registry: %v", got)
	}
	// A second cluster, then its deletion, and a restart in between.
	spec = isolated("aks2")
	spec.KubernetesVersion = "1.32.0"
	must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, spec))
	e.restart()
	if got := p.of("cluster/aks2"); len(got) != 2 {
		t.Fatalf("pins of aks2 after restart: %v", got)
	}
	must[*deploy.DeleteReport](t)(e.svc.DeleteCluster(ctx, "aks2"))
	if got := p.of("cluster/aks2"); got != nil {
		t.Fatalf("pins kept after cluster delete: %v", got)
	}
	if got := p.of("someone-else"); len(got) != 1 {
		t.Fatalf("pins of another owner touched: %v", got)
	}
}

// A pin sync that failed is not taken for done: the next Refresh (Follow)
// syncs the pins of the state served. A pinner whose storage is not ready
// yet (a replica's start) is no error in the log; any other failure is.
func TestPinSyncRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		down  error
		level zapcore.Level
	}{
		{errors.New("pinner down"), zapcore.ErrorLevel},
		{fmt.Errorf("replica: %w", deploy.ErrPinsNotReady), zapcore.InfoLevel},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			t.Parallel()
			p := &pinner{pins: map[string][]string{}, down: tc.down}
			e := newEnv(t, func(b *deploy.Binding) { b.Pins, b.Bootstrap = p, bootstrapFor })
			core, logs := observer.New(zapcore.InfoLevel)
			e.log = zap.New(core)
			e.restart()
			ctx := context.Background()
			spec := isolated("aks1")
			spec.KubernetesVersion = "1.31.3"
			must[*deploy.ClusterInfo](t)(e.svc.CreateCluster(ctx, spec))
			if got := p.of("cluster/aks1"); got != nil {
				t.Fatalf("pins synced while the pinner was down: %v", got)
			}
			var levels []zapcore.Level
			for _, l := range logs.FilterMessageSnippet("pin").All() {
				levels = append(levels, l.Level)
			}
			if len(levels) == 0 || slices.ContainsFunc(levels, func(l zapcore.Level) bool { return l != tc.level }) {
				t.Fatalf("the failed syncs were logged at %v, want %v", levels, tc.level)
			}
			p.mu.Lock()
			p.down = nil
			p.mu.Unlock()
			if changed := must[bool](t)(e.svc.Refresh(ctx)); changed {
				t.Fatal("Refresh reported a change nobody made")
			}
			if got := p.of("cluster/aks1"); len(got) != 2 {
				t.Fatalf("pins after the pinner came back and a Refresh: %v, want 2", got)
			}
		})
	}
}

package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// memStore is a deploy.Store that keeps the state as JSON, as a database
// would: nothing is shared with the service's copy. Its versions count
// saves; saves counts the calls to Save.
type memStore struct {
	mu    sync.Mutex
	b     []byte
	n     int
	saves int
}

func (m *memStore) Load(ctx context.Context) (*deploy.State, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := deploy.NewState()
	if m.b == nil {
		return st, "", nil
	}
	return st, m.version(), json.Unmarshal(m.b, st)
}

func (m *memStore) Save(ctx context.Context, st *deploy.State, base string) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	if base != m.version() {
		return "", fmt.Errorf("memstore: at %s, not %s: %w", m.version(), base, deploy.ErrStale)
	}
	m.b = b
	m.n++
	return m.version(), nil
}

// version is the version of what is stored ("" for nothing); m.mu held.
func (m *memStore) version() string {
	if m.n == 0 {
		return ""
	}
	return strconv.Itoa(m.n)
}

func (m *memStore) saveCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// engine records the rule set the service hands the data plane.
type engine struct {
	mu    sync.Mutex
	set   *rules.Set
	creds map[string]upstream.Credentials
	calls int
}

func (e *engine) SetRules(s *rules.Set, c map[string]upstream.Credentials) {
	e.mu.Lock()
	e.set, e.creds = s, c
	e.calls++
	e.mu.Unlock()
}

// serves reports whether repo maps to upstream host/path.
func (e *engine) serves(repo string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set == nil {
		return "", false
	}
	m, ok := e.set.Match(repo)
	if !ok {
		return "", false
	}
	return m.Host + "/" + m.Repository, true
}

type pushed []string

func (p pushed) PushedRepos(context.Context) ([]string, error) { return p, nil }

const (
	boundName = "labbootstrap"
	boundAddr = "10.0.0.2:5000"
	pauseRepo = "aks-managed-repository/oss/kubernetes/pause"
)

type env struct {
	t     *testing.T
	svc   *deploy.Service
	eng   *engine
	store deploy.Store
	bind  deploy.Binding
	prom  *prometheus.Registry
	log   *zap.Logger // the service's at the next restart; none if nil
}

// newEnv returns a service bound to registry labbootstrap at 10.0.0.2:5000.
func newEnv(t *testing.T, mod ...func(*deploy.Binding)) *env {
	t.Helper()
	e := &env{t: t, eng: &engine{}, store: &memStore{}}
	e.bind = deploy.Binding{Registry: boundName, Region: "westus2", Address: boundAddr, Scheme: "http", Rules: e.eng}
	for _, m := range mod {
		m(&e.bind)
	}
	e.restart()
	return e
}

// restart builds a new service over the same store, as a new process would.
func (e *env) restart() {
	e.t.Helper()
	e.prom = prometheus.NewRegistry()
	log := e.log
	if log == nil {
		log = zap.NewNop()
	}
	svc, err := deploy.New(context.Background(), e.store, e.bind, log, e.prom,
		deploy.WithClock(func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }))
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// code returns the *deploy.Error code of err, or "" if err is nil.
func code(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var de *deploy.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a *deploy.Error", err)
	}
	return de.Code
}

// byo creates a bring-your-own registry with the exact rule and a private
// endpoint, ready for a cluster.
func (e *env) byo(name string) *deploy.RegistryInfo {
	e.t.Helper()
	ctx := context.Background()
	must[*deploy.RegistryInfo](e.t)(e.svc.CreateRegistry(ctx, deploy.RegistrySpec{Name: name}))
	must[deploy.CacheRule](e.t)(e.svc.CreateCacheRule(ctx, name, deploy.CacheRule{Rule: rules.Rule{
		Name: deploy.RequiredRuleName, Source: deploy.RequiredRuleSource, Target: deploy.RequiredRuleTarget}}))
	must[*deploy.PrivateEndpoint](e.t)(e.svc.CreatePrivateEndpoint(ctx, deploy.PrivateEndpointSpec{Name: name + "-pe", Registry: name}))
	return must[*deploy.RegistryInfo](e.t)(e.svc.Registry(ctx, name))
}

func isolated(name string) deploy.ClusterSpec {
	return deploy.ClusterSpec{Name: name, NetworkIsolated: true}
}

// repaired reports whether a reconcile report has a repair of kind/action.
func repaired(reps []deploy.ReconcileReport, kind, action string) bool {
	for _, r := range reps {
		for _, x := range r.Repairs {
			if x.Kind == kind && x.Action == action {
				return true
			}
		}
	}
	return false
}

// repairs reads airlock_control_repairs_total for kind/action.
func (e *env) repairs(kind, action string) float64 {
	e.t.Helper()
	mfs, err := e.prom.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "airlock_control_repairs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["kind"] == kind && got["action"] == action {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

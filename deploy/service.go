package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrStale is what Store.Save answers when the stored state is no longer
// the version the caller derived its state from: another writer (another
// replica sharing the store) saved in between. The Service then reloads,
// applies its change again to what it read, and saves again.
var ErrStale = errors.New("control state changed since it was read")

// Store keeps the control state across restarts and, when several
// processes share it (replicas on one storage account), between them.
// Every stored state has a version: an opaque string that changes with
// every Save, "" for a store nothing was saved to.
type Store interface {
	// Load returns the stored state (empty if nothing was stored) and its
	// version.
	Load(ctx context.Context) (*State, string, error)
	// Save replaces the stored state with s, atomically, if the stored
	// version is still base (the version s was derived from; "" creates
	// the first state), and returns the new version. Otherwise nothing is
	// written and the error wraps ErrStale.
	Save(ctx context.Context, s *State, base string) (string, error)
}

// Versioner is a Store that tells its current version without reading the
// state: Refresh polls it and reads the state only when it moved.
type Versioner interface {
	// Version returns the stored state's version ("" if nothing was
	// stored), as Load would.
	Version(ctx context.Context) (string, error)
}

// Serializer is a Store shared by several processes that runs a section in
// one of them at a time. The Service syncs pins in it, so that the pins of
// a newer state are never replaced by those of an older one that another
// replica had read.
type Serializer interface {
	// Exclusive runs fn while no other caller, in this process or another,
	// runs one on the same store, waiting its turn until ctx ends. fn's
	// context ends if the exclusivity is lost. It returns fn's error, or
	// why the section could not be entered.
	Exclusive(ctx context.Context, fn func(ctx context.Context) error) error
}

// RuleSetter is the data plane: it serves a rule set with its credential
// sets from the next request on. *engine.Engine implements it.
type RuleSetter interface {
	SetRules(s *rules.Set, creds map[string]upstream.Credentials)
}

// RepoLister lists repositories holding pushed (not cached) content; a cache
// rule may not capture one. The metadata index (meta.PushedLister)
// implements it.
type RepoLister interface {
	PushedRepos(ctx context.Context) ([]string, error)
}

// Binding ties the control module to the registry this process serves: its
// rules are the engine's rules, and its private endpoint is this process.
type Binding struct {
	// Registry is the name of the registry this process is the data plane
	// of; "" serves none. Other registries are kept as data only.
	Registry string
	// Region is the default location of new registries and clusters.
	Region string
	// Address is host:port where nodes reach this process: the bound
	// registry's private endpoint address. Scheme is http or https.
	Address string
	Scheme  string
	// BaseRules and BaseCredentials (the configuration file's) are served
	// together with the bound registry's; a conflict is refused.
	BaseRules       []rules.Rule
	BaseCredentials map[string]upstream.Credentials
	// Rules receives the effective rule set; nil for offline edits.
	Rules RuleSetter
	// Repos lists pushed repositories; nil when none are known.
	Repos RepoLister
	// Pins receives the bootstrap images of the clusters whose nodes pull
	// from the bound registry (listed by Bootstrap), after every change, so
	// the cache never evicts them; nil pins nothing.
	Pins Pinner
	// Bootstrap lists what a node of a Kubernetes version pulls; nil is
	// NodeBootstrapImages (the deploy/aks table).
	Bootstrap BootstrapImages
	// Replica reports whether address (host:port) is where another live
	// replica serving this registry answers (the cluster's membership). A
	// managed private endpoint of the bound registry pointing at one is
	// left there by reconcile instead of being moved to Address, so that
	// replicas with different addresses never take it from each other.
	// nil: there is no other replica, the endpoint follows Address.
	Replica func(address string) bool
}

// Service is the control plane. Its methods are the admin API. It is safe
// for concurrent use, and several Services (replicas) may share one Store:
// every change is a Load, the change, and a Save conditional on the
// version loaded, repeated if another replica saved in between, so no
// change is lost; reads answer from the state last loaded, which Refresh
// (Follow) keeps current.
type Service struct {
	store    Store
	bind     Binding
	log      *zap.Logger
	m        *metrics
	now      func() time.Time
	deferred bool

	mu     sync.Mutex
	st     *State // the stored state at version ver; empty until loaded
	ver    string
	loaded bool
	gen    uint64 // counts the states served: one moves the pins
	pinned uint64 // the gen whose pins were synced last

	pinMu sync.Mutex // one pin sync at a time

	// served is ver, readable without mu: mu is held across the store's
	// round trips (a load, a save), and Version is asked on every peer
	// request of a cluster.
	served atomic.Value // string
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithDeferredLoad makes New contact nothing: the engine serves the base
// rules, and the state is loaded by the first Refresh, read or change. For
// a store that may not answer yet when the process starts (Azure); a
// stored rule that conflicts with the base is then logged, not refused.
func WithDeferredLoad() Option { return func(s *Service) { s.deferred = true } }

// New loads the state and serves the bound registry's rules. It fails if
// the stored rules conflict with the base rules.
func New(ctx context.Context, store Store, b Binding, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Service, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	b.Registry = strings.ToLower(b.Registry)
	if b.Scheme == "" {
		b.Scheme = "http"
	}
	if b.Region == "" {
		b.Region = "westus2"
	}
	if b.Bootstrap == nil {
		b.Bootstrap = NodeBootstrapImages
	}
	s := &Service{store: store, bind: b, log: log, m: m, now: time.Now, st: NewState()}
	for _, o := range opts {
		o(s)
	}
	if s.deferred {
		set, creds, err := s.effective(s.st)
		if err != nil {
			return nil, err
		}
		s.apply(set, creds)
		return s, nil
	}
	st, ver, err := store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("control state: load: %w", err)
	}
	st.fill()
	set, creds, err := s.effective(st)
	if err != nil {
		return nil, fmt.Errorf("control state for registry %q: %w", b.Registry, err)
	}
	s.st, s.ver, s.loaded, s.gen = st, ver, true, 1
	s.served.Store(ver)
	s.apply(set, creds)
	s.syncPins(ctx)
	return s, nil
}

// SetAddress changes where nodes reach this process (once the listener's
// port is known); the next reconcile moves the bound registry's managed
// private endpoint there.
func (s *Service) SetAddress(addr string) {
	s.mu.Lock()
	s.bind.Address = addr
	s.mu.Unlock()
}

// Binding returns the binding in use.
func (s *Service) Binding() Binding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bind
}

func (s *Service) apply(set *rules.Set, creds map[string]upstream.Credentials) {
	if s.bind.Rules != nil {
		s.bind.Rules.SetRules(set, creds)
	}
}

// effective is what the engine serves: the base rules plus the bound
// registry's. A stored rule identical (name, source, target) to a base rule
// is the same rule and is served once, as the base has it.
func (s *Service) effective(st *State) (*rules.Set, map[string]upstream.Credentials, error) {
	rs := append([]rules.Rule(nil), s.bind.BaseRules...)
	creds := make(map[string]upstream.Credentials, len(s.bind.BaseCredentials))
	for k, v := range s.bind.BaseCredentials {
		creds[k] = v
	}
	if reg := st.Registries[s.bind.Registry]; reg != nil && s.bind.Registry != "" {
		for _, cs := range reg.CredentialSets {
			if _, dup := creds[cs.Name]; dup {
				return nil, nil, conflict(CodeRuleConflictsWithConfig, "credential set %q of registry %s is also defined in the configuration file", cs.Name, reg.Name)
			}
			c, err := resolve(cs)
			if err != nil {
				return nil, nil, err
			}
			creds[cs.Name] = c
		}
		for _, cr := range reg.CacheRules {
			if sameAsBase(cr, s.bind.BaseRules) {
				continue
			}
			rs = append(rs, cr.Rule)
		}
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		err = ruleError(err)
		var de *Error
		if errors.As(err, &de) && len(s.bind.BaseRules) > 0 {
			de.Message += " (together with the configuration file's rules)"
		}
		return nil, nil, err
	}
	return set, creds, nil
}

func sameAsBase(cr CacheRule, base []rules.Rule) bool {
	for _, b := range base {
		if strings.EqualFold(b.Name, cr.Name) && b.Source == cr.Source && b.Target == cr.Target {
			return true
		}
	}
	return false
}

// resolve reads a credential set's secret.
func resolve(cs CredentialSet) (upstream.Credentials, error) {
	c := upstream.Credentials{Username: cs.Username, Password: cs.Password}
	switch {
	case cs.PasswordFile != "":
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return c, invalid(CodeCredentialSetUnresolvable, "credential set %q: %v", cs.Name, err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	case cs.PasswordEnv != "":
		v, ok := os.LookupEnv(cs.PasswordEnv)
		if !ok {
			return c, invalid(CodeCredentialSetUnresolvable, "credential set %q: environment variable %s is not set in the serving process", cs.Name, cs.PasswordEnv)
		}
		c.Password = v
	}
	return c, nil
}

// metrics count the control loop's work.
type metrics struct {
	repairs    *prometheus.CounterVec
	reconciles prometheus.Counter
	stale      prometheus.Counter
	reloads    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_control_repairs_total",
			Help: "AKS-managed resources the reconcile loop restored or deleted, by kind and action.",
		}, []string{"kind", "action"}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_control_reconciles_total",
			Help: "Reconcile passes over all clusters.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_control_state_stale_saves_total",
			Help: "Changes saved again because another replica had saved the control state since it was read.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_control_state_reloads_total",
			Help: "Control states read from the store because another writer changed it.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.repairs, m.reconciles, m.stale, m.reloads} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("deploy: metrics: %w", err)
		}
	}
	return m, nil
}

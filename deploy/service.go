package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Store keeps the control state across restarts.
type Store interface {
	// Load returns the stored state (empty if nothing was stored).
	Load(ctx context.Context) (*State, error)
	// Save replaces the stored state with s, atomically.
	Save(ctx context.Context, s *State) error
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
}

// Service is the control plane. Its methods are the admin API. It is safe
// for concurrent use.
type Service struct {
	store Store
	bind  Binding
	log   *zap.Logger
	m     *metrics
	now   func() time.Time

	mu sync.Mutex
	st *State
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

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
	st, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	st.fill()
	s := &Service{store: store, bind: b, log: log, m: m, now: time.Now, st: st}
	for _, o := range opts {
		o(s)
	}
	set, creds, err := s.effective(st)
	if err != nil {
		return nil, fmt.Errorf("control state for registry %q: %w", b.Registry, err)
	}
	s.apply(set, creds)
	s.syncPins(st)
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

// update runs fn on a copy of the state; if it succeeds and the bound
// registry's rules still make a valid set with the base rules, the copy is
// saved and the engine's rules swapped.
func (s *Service) update(ctx context.Context, fn func(st *State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.st.Clone()
	if err := fn(next); err != nil {
		return err
	}
	set, creds, err := s.effective(next)
	if err != nil {
		return err
	}
	if err := s.store.Save(ctx, next); err != nil {
		return fmt.Errorf("control state: save: %w", err)
	}
	s.st = next
	s.apply(set, creds)
	s.syncPins(next)
	return nil
}

// view runs fn on the current state, which it must not change.
func (s *Service) view(fn func(st *State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(s.st)
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
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.repairs, m.reconciles} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("deploy: metrics: %w", err)
		}
	}
	return m, nil
}

// Package acrauth implements auth.Authorizer in the manner of Azure
// Container Registry: users with bcrypt passwords, scoped tokens (ACR
// scope maps: pull, push, delete on repository patterns), anonymous pull
// for chosen repositories, and JWT access and refresh tokens from
// /oauth2/token and /oauth2/exchange, signed with one key kept on disk or,
// for replicas, in the store they share (WithKeyStore).
package acrauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/registry/auth"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// Config is the auth configuration.
type Config struct {
	// Users have every repository action and the catalog; admins also
	// the metrics and the admin API.
	Users []User
	// Tokens have only what their scopes grant.
	Tokens []Token
	// AnonymousPull lists repository patterns anyone may pull.
	AnonymousPull []string
	// Service is the token audience and the challenge's service; "" means
	// the Host the request was sent to.
	Service string
	// AccessTTL and RefreshTTL are token lifetimes (defaults 1h and 3h).
	AccessTTL, RefreshTTL time.Duration
	// KeyFile holds the token signing key (ES256, PKCS#8 PEM), created on
	// first start and reused after; not used with WithKeyStore.
	KeyFile string
}

// User is a registry user.
type User struct {
	Name         string
	PasswordHash string // bcrypt
	Admin        bool
}

// Token is an ACR-style scoped token: a name, a password and a scope map.
type Token struct {
	Name         string
	PasswordHash string // bcrypt
	Scopes       []Scope
}

// Scope grants actions on repositories. A pattern is a repository name,
// a namespace ending in "/*" (everything under it), or "*".
type Scope struct {
	Repositories []string
	Actions      []string // pull, push, delete, or "*"
}

// Defaults.
const (
	DefaultAccessTTL  = time.Hour
	DefaultRefreshTTL = 3 * time.Hour
)

// Service is the authorizer and the token endpoint. It is safe for
// concurrent use.
type Service struct {
	log        *zap.Logger
	principals map[string]*principal
	anon       []pattern
	service    string
	accessTTL  time.Duration
	refreshTTL time.Duration
	signer     atomic.Pointer[signer] // nil until a key store's key is loaded
	keyMu      sync.Mutex             // one load from the key store at a time
	keys       KeyStore               // nil: the key is in Config.KeyFile
	now        func() time.Time
	basic      basicCache
	// dummy is compared against for names that do not exist, so that they
	// cost what a wrong password does: a bcrypt hash of a random secret
	// nobody knows, at the highest cost of the configured hashes.
	dummy []byte
	// compare checks a password against a bcrypt hash
	// (bcrypt.CompareHashAndPassword; tests count the calls).
	compare func(hash, pass []byte) error
}

var _ auth.Authorizer = (*Service)(nil)

// Option configures a Service.
type Option func(*Service)

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithKeyStore keeps the signing key in ks (shared by the replicas of a
// cluster) instead of Config.KeyFile: it is created there once, by the
// first replica to load it. New does not contact ks: the key is loaded by
// LoadKey, or by the first request that needs it.
func WithKeyStore(ks KeyStore) Option { return func(s *Service) { s.keys = ks } }

// New validates c and loads (or creates) the signing key in c.KeyFile;
// with WithKeyStore, LoadKey loads it from the key store.
func New(c Config, log *zap.Logger, opts ...Option) (*Service, error) {
	s := &Service{log: log, principals: map[string]*principal{}, service: c.Service,
		accessTTL: c.AccessTTL, refreshTTL: c.RefreshTTL, now: time.Now,
		compare: bcrypt.CompareHashAndPassword}
	for _, o := range opts {
		o(s)
	}
	if s.accessTTL <= 0 {
		s.accessTTL = DefaultAccessTTL
	}
	if s.refreshTTL <= 0 {
		s.refreshTTL = DefaultRefreshTTL
	}
	for _, u := range c.Users {
		p, err := newPrincipal(u.Name, u.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("auth: user %q: %w", u.Name, err)
		}
		p.user, p.admin = true, u.Admin
		if err := s.add(p); err != nil {
			return nil, err
		}
	}
	for _, t := range c.Tokens {
		p, err := newPrincipal(t.Name, t.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("auth: token %q: %w", t.Name, err)
		}
		if len(t.Scopes) == 0 {
			return nil, fmt.Errorf("auth: token %q: needs at least one scope", t.Name)
		}
		for _, sc := range t.Scopes {
			g, err := newGrant(sc)
			if err != nil {
				return nil, fmt.Errorf("auth: token %q: %w", t.Name, err)
			}
			p.grants = append(p.grants, g...)
		}
		if err := s.add(p); err != nil {
			return nil, err
		}
	}
	for _, a := range c.AnonymousPull {
		pt, err := newPattern(a)
		if err != nil {
			return nil, fmt.Errorf("auth: anonymousPull: %w", err)
		}
		s.anon = append(s.anon, pt)
	}
	if s.keys == nil {
		if c.KeyFile == "" {
			return nil, errors.New("auth: no signing key file")
		}
		sg, err := loadSigner(c.KeyFile)
		if err != nil {
			return nil, err
		}
		s.signer.Store(sg)
	}
	var err error
	if s.dummy, err = s.dummyHash(); err != nil {
		return nil, err
	}
	return s, nil
}

// dummyHash is a bcrypt hash of a random secret at the highest cost among
// the configured hashes. Comparing an unknown name's password against it
// takes as long as a wrong password for the costliest principal; a
// principal whose hash is cheaper than another's stays distinguishable by
// time, so give every hash the same cost (airlock hash-password uses
// bcrypt.DefaultCost). With no principals every name is unknown and there
// is nothing to hide: the cost is bcrypt.MinCost.
func (s *Service) dummyHash() ([]byte, error) {
	cost := bcrypt.MinCost
	for _, p := range s.principals {
		if c, _ := bcrypt.Cost(p.hash); c > cost { // newPrincipal checked it
			cost = c
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: random secret: %w", err)
	}
	h, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return h, nil
}

func (s *Service) add(p *principal) error {
	if _, dup := s.principals[p.name]; dup {
		return fmt.Errorf("auth: %q is defined twice (users and tokens share one namespace)", p.name)
	}
	s.principals[p.name] = p
	return nil
}

// LoadKey loads (or creates) the signing key in the key store given with
// WithKeyStore, until it succeeds once: before, no token is issued or
// verified (requests needing one fail with LoadKey's error, and the token
// endpoint answers 503). Without a key store New loaded the key and
// LoadKey does nothing.
func (s *Service) LoadKey(ctx context.Context) error {
	_, err := s.key(ctx)
	return err
}

// key is the signing key, loaded from the key store now if it was not yet.
func (s *Service) key(ctx context.Context) (*signer, error) {
	if sg := s.signer.Load(); sg != nil {
		return sg, nil
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if sg := s.signer.Load(); sg != nil {
		return sg, nil
	}
	sg, err := sharedSigner(ctx, s.keys)
	if err != nil {
		return nil, err
	}
	s.signer.Store(sg)
	return sg, nil
}

// PublicKey is the key tokens are verified with (nil until LoadKey
// succeeded, with a key store).
func (s *Service) PublicKey() *ecdsa.PublicKey {
	sg := s.signer.Load()
	if sg == nil {
		return nil
	}
	return &sg.key.PublicKey
}

// serviceFor is the service name (token audience) of a request.
func (s *Service) serviceFor(r *http.Request) string {
	if s.service != "" {
		return s.service
	}
	return r.Host
}

// Challenge implements auth.Authorizer: the ACR challenge, e.g.
// Bearer realm="https://host/oauth2/token",service="host",scope="repository:a:pull".
func (s *Service) Challenge(r *http.Request, want []auth.Access) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	c := fmt.Sprintf(`Bearer realm="%s://%s/oauth2/token",service="%s"`, scheme, r.Host, s.serviceFor(r))
	if sc := auth.Scope(want); sc != "" {
		c += fmt.Sprintf(`,scope="%s"`, sc)
	}
	return c
}

// Authorize implements auth.Authorizer. Basic credentials are checked
// directly (docker login style); bearer tokens must be airlock's, unexpired,
// for this service, and hold every access wanted, which their subject must
// still be allowed.
func (s *Service) Authorize(r *http.Request, want []auth.Access) (string, error) {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		if len(want) > 0 && s.anonymousMay(want) {
			return "", nil
		}
		return "", auth.ErrUnauthenticated
	case hasScheme(h, "Basic"):
		name, pass, ok := r.BasicAuth()
		if !ok {
			return "", fmt.Errorf("%w: malformed basic credentials", auth.ErrUnauthenticated)
		}
		p, err := s.login(r.Context(), name, pass, s.serviceFor(r))
		if err != nil {
			return "", err
		}
		for _, a := range want {
			if !p.may(a) {
				return "", fmt.Errorf("%w: %s may not %s", auth.ErrDenied, p.name, auth.Scope([]auth.Access{a}))
			}
		}
		return p.name, nil
	case hasScheme(h, "Bearer"):
		sg, err := s.key(r.Context())
		if err != nil {
			return "", err
		}
		c, err := sg.verify(strings.TrimSpace(h[len("Bearer"):]), grantAccess, s.serviceFor(r), s.now)
		if err != nil {
			return "", fmt.Errorf("%w: %v", auth.ErrUnauthenticated, err)
		}
		p := s.principals[c.Subject]
		if c.Subject != "" && p == nil {
			return "", fmt.Errorf("%w: the token's subject no longer exists", auth.ErrUnauthenticated)
		}
		for _, a := range want {
			if !c.holds(a) || !s.may(p, a) {
				return "", fmt.Errorf("%w: the token lacks %s", auth.ErrUnauthenticated, auth.Scope([]auth.Access{a}))
			}
		}
		return c.Subject, nil
	}
	return "", fmt.Errorf("%w: unsupported authorization scheme", auth.ErrUnauthenticated)
}

func hasScheme(h, scheme string) bool {
	return len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) && h[len(scheme)] == ' '
}

// may is what p (nil: anonymous) may do now.
func (s *Service) may(p *principal, a auth.Access) bool {
	if p == nil {
		return s.anonymousMay([]auth.Access{a})
	}
	return p.may(a)
}

func (s *Service) anonymousMay(want []auth.Access) bool {
	for _, a := range want {
		if a.Type != auth.TypeRepository || a.Action != auth.ActionPull || !matchAny(s.anon, a.Name) {
			return false
		}
	}
	return true
}

// login checks a name and password: a user's or token's bcrypt password,
// or ACR's null GUID with a refresh token as the password. Failures say
// nothing about which part was wrong, and take as long: an unknown name
// costs one bcrypt comparison against s.dummy, at the configured cost,
// through the same verification cache a wrong password goes through. A
// signing key that cannot be loaded is its error, not a failed login.
func (s *Service) login(ctx context.Context, name, pass, service string) (*principal, error) {
	if name == nullGUID {
		sg, err := s.key(ctx)
		if err != nil {
			return nil, err
		}
		c, err := sg.verify(pass, grantRefresh, service, s.now)
		if err != nil || s.principals[c.Subject] == nil {
			return nil, fmt.Errorf("%w: invalid credentials", auth.ErrUnauthenticated)
		}
		return s.principals[c.Subject], nil
	}
	p := s.principals[name]
	hash := s.dummy
	if p != nil {
		hash = p.hash
	}
	if !s.basic.check(name, pass, hash, s.now(), s.compare) {
		return nil, fmt.Errorf("%w: invalid credentials", auth.ErrUnauthenticated)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: invalid credentials", auth.ErrUnauthenticated)
	}
	return p, nil
}

// nullGUID is the user name ACR takes with a refresh token as password
// (az acr login --expose-token).
const nullGUID = "00000000-0000-0000-0000-000000000000"

// basicCache remembers recent successful bcrypt checks by a hash of the
// name, password and stored hash, so Basic on every request does not cost
// a bcrypt each. It never holds a password.
type basicCache struct {
	mu sync.Mutex
	ok map[[32]byte]time.Time
}

const (
	basicCacheTTL  = 5 * time.Minute
	basicCacheSize = 4096
)

// check reports whether pass matches hash, from the cache or by one call
// of compare; only a match is remembered.
func (b *basicCache) check(name, pass string, hash []byte, now time.Time, compare func(hash, pass []byte) error) bool {
	k := cacheKey(name, pass, hash)
	b.mu.Lock()
	exp, hit := b.ok[k]
	b.mu.Unlock()
	if hit && now.Before(exp) {
		return true
	}
	if compare(hash, []byte(pass)) != nil {
		return false
	}
	b.mu.Lock()
	if b.ok == nil || len(b.ok) >= basicCacheSize {
		b.ok = map[[32]byte]time.Time{}
	}
	b.ok[k] = now.Add(basicCacheTTL)
	b.mu.Unlock()
	return true
}

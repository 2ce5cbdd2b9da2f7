package acrauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/clocktest"
	"github.com/airlock/airlock/registry/auth"
	"go.uber.org/zap"
)

// memKeys is a key store in memory, as a shared store behaves: the first
// key stored wins, and later calls get it.
type memKeys struct {
	mu      sync.Mutex
	key     []byte
	creates int
}

func (m *memKeys) LoadOrCreate(_ context.Context, create func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != nil {
		return m.key, nil
	}
	b, err := create()
	if err != nil {
		return nil, err
	}
	m.key, m.creates = b, m.creates+1
	return b, nil
}

func sharedService(t *testing.T, ks KeyStore, c *clocktest.Clock) (*Service, error) {
	t.Helper()
	s, err := New(Config{
		Tokens:  []Token{{Name: "puller", PasswordHash: hashOf(t, "pw-puller"), Scopes: []Scope{{Repositories: []string{"team/*"}, Actions: []string{"pull"}}}}},
		Service: "registry.test",
	}, zap.NewNop(), WithClock(c.Now), WithKeyStore(ks))
	if err != nil {
		return nil, err
	}
	return s, s.LoadKey(context.Background())
}

// Replicas starting at once on one key store sign with one key, created
// once: a token issued by one is accepted by every other; a replica on
// another store refuses it.
func TestSharedSigningKey(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now())
	ks := &memKeys{}
	svcs := make([]*Service, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range svcs {
		wg.Go(func() { svcs[i], errs[i] = sharedService(t, ks, c) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if ks.creates != 1 {
		t.Fatalf("the key was created %d times", ks.creates)
	}
	tok := issue(t, svcs[0], "puller", "pw-puller", "repository:team/app:pull")
	for i, s := range svcs {
		if sub, err := s.Authorize(req("Bearer "+tok), pull); err != nil || sub != "puller" {
			t.Fatalf("replica %d refuses replica 0's token: %q %v", i, sub, err)
		}
	}
	other, err := sharedService(t, &memKeys{}, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Authorize(req("Bearer "+tok), pull); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("a replica of another cluster accepts the token: %v", err)
	}
}

type brokenKeys struct {
	key []byte
	err error
}

func (b brokenKeys) LoadOrCreate(context.Context, func() ([]byte, error)) ([]byte, error) {
	return b.key, b.err
}

// A key store that fails, or holds something that is not a P-256 key,
// makes LoadKey fail with a clear error.
func TestSharedSigningKeyRefused(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now())
	for _, tc := range []struct {
		name string
		ks   KeyStore
		want string
	}{
		{"unreachable", brokenKeys{err: errors.New("store unreachable")}, "store unreachable"},
		{"not PEM", brokenKeys{key: []byte("garbage")}, "not PEM"},
	} {
		_, err := sharedService(t, tc.ks, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shared store") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// flakyKeys fails until up is set, counting calls.
type flakyKeys struct {
	memKeys
	up    atomic.Bool
	calls atomic.Int32
}

func (f *flakyKeys) LoadOrCreate(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	f.calls.Add(1)
	if !f.up.Load() {
		return nil, errStoreDown
	}
	return f.memKeys.LoadOrCreate(ctx, create)
}

var errStoreDown = errors.New("store unreachable")

// A replica starts before its shared store answers: New does not contact
// the key store; until the key loads, the token endpoint answers 503 and a
// bearer token fails with the store's error (a 503 for the registry, not
// a 401 telling the client its credentials are wrong); once the store
// answers, the first request loads the key and tokens work.
func TestSharedSigningKeyLoadedLate(t *testing.T) {
	t.Parallel()
	c := clocktest.New(time.Now())
	ks := &flakyKeys{}
	s, err := New(Config{
		Tokens:  []Token{{Name: "puller", PasswordHash: hashOf(t, "pw-puller"), Scopes: []Scope{{Repositories: []string{"team/*"}, Actions: []string{"pull"}}}}},
		Service: "registry.test",
	}, zap.NewNop(), WithClock(c.Now), WithKeyStore(ks))
	if err != nil {
		t.Fatal(err)
	}
	if n := ks.calls.Load(); n != 0 || s.PublicKey() != nil {
		t.Fatalf("New asked the key store %d times", n)
	}
	r := httptest.NewRequest("GET", "http://registry.test/oauth2/token?service=registry.test&scope=repository:team/app:pull", nil)
	r.SetBasicAuth("puller", "pw-puller")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("token endpoint without a key: %d %s", w.Code, w.Body)
	}
	if _, err := s.Authorize(req("Bearer x.y.z"), pull); !errors.Is(err, errStoreDown) || errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("a bearer token without a key: %v", err)
	}
	ks.up.Store(true)
	tok := issue(t, s, "puller", "pw-puller", "repository:team/app:pull")
	if sub, err := s.Authorize(req("Bearer "+tok), pull); err != nil || sub != "puller" {
		t.Fatalf("after the store answered: %q %v", sub, err)
	}
	calls := ks.calls.Load()
	if err := s.LoadKey(context.Background()); err != nil || ks.calls.Load() != calls || ks.creates != 1 {
		t.Fatalf("the loaded key is asked for again: %v, %d calls", err, ks.calls.Load())
	}
}

package acrauth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// comparisons records every bcrypt comparison a Service makes. It answers
// from the passwords it was given instead of running bcrypt (slow under
// -race): a match only for a hash made of its password.
type comparisons struct {
	mu        sync.Mutex
	passwords map[string]string // hash → password
	hashes    [][]byte
}

func (c *comparisons) compare(hash, pass []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hashes = append(c.hashes, bytes.Clone(hash))
	if pw, ok := c.passwords[string(hash)]; ok && pw == string(pass) {
		return nil
	}
	return bcrypt.ErrMismatchedHashAndPassword
}

// take returns the hashes compared since the last take.
func (c *comparisons) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hashes
	c.hashes = nil
	return h
}

// hashAt makes a hash of pw at cost and tells c its password.
func (c *comparisons) hashAt(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.passwords[string(h)] = pw
	c.mu.Unlock()
	return string(h)
}

// loginWays are the ways a name and password reach login; each returns
// everything a client sees of the answer.
var loginWays = map[string]func(s *Service, name, pass string) string{
	"basic on the API": func(s *Service, name, pass string) string {
		r := req("")
		r.SetBasicAuth(name, pass)
		_, err := s.Authorize(r, pull)
		return fmt.Sprint(err)
	},
	"GET /oauth2/token": func(s *Service, name, pass string) string {
		r := httptest.NewRequest("GET", "http://registry.test/oauth2/token?service=registry.test&scope=repository:team/app:pull", nil)
		r.SetBasicAuth(name, pass)
		return serve(s, r)
	},
	"POST /oauth2/token": func(s *Service, name, pass string) string {
		return serve(s, form("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {name}, "password": {pass},
			"service": {"registry.test"}, "scope": {"repository:team/app:pull"}}))
	},
	"POST /oauth2/exchange password": func(s *Service, name, pass string) string {
		return serve(s, form("/oauth2/exchange", url.Values{"grant_type": {"password"}, "username": {name}, "password": {pass}}))
	},
	"POST /oauth2/exchange basic": func(s *Service, name, pass string) string {
		r := form("/oauth2/exchange", url.Values{"service": {"registry.test"}})
		r.SetBasicAuth(name, pass)
		return serve(s, r)
	},
}

func form(path string, v url.Values) *http.Request {
	r := httptest.NewRequest("POST", "http://registry.test"+path, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func serve(s *Service, r *http.Request) string {
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return fmt.Sprintf("%d %q %q %s", w.Code, w.Header().Get("Www-Authenticate"), w.Header().Get("Content-Type"), w.Body)
}

// An unknown name costs exactly what a wrong password does (one bcrypt
// comparison at the highest configured cost, every time) and gets the
// same answer, on every way in.
func TestUnknownNamesLookLikeWrongPasswords(t *testing.T) {
	t.Parallel()
	const low, mid, high = bcrypt.MinCost, bcrypt.MinCost + 1, bcrypt.MinCost + 2
	log := &comparisons{passwords: map[string]string{}}
	s, err := New(Config{
		Users: []User{
			{Name: "alice", PasswordHash: log.hashAt(t, "pw-alice", low)},
			{Name: "bob", PasswordHash: log.hashAt(t, "pw-bob", high)},
		},
		Tokens:  []Token{{Name: "puller", PasswordHash: log.hashAt(t, "pw-puller", mid), Scopes: []Scope{{Repositories: []string{"team/*"}, Actions: []string{"pull"}}}}},
		Service: "registry.test",
		KeyFile: filepath.Join(t.TempDir(), "key.pem"),
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost(s.dummy); err != nil || c != high {
		t.Fatalf("dummy hash cost %d (%v), want the highest configured, %d", c, err, high)
	}
	dummy := bytes.Clone(s.dummy)
	s.compare = log.compare

	attempts := []struct {
		name, pass string
		cost       int // of the one hash compared
		known      bool
	}{
		{"bob", "wrong", high, true},
		{"alice", "wrong", low, true},
		{"puller", "wrong", mid, true},
		{"nobody", "wrong", high, false},
		{"nobody", "airlock-dummy", high, false}, // the old dummy's password
		{"not a valid name", "x", high, false},
		{"", "", high, false},
	}
	for way, try := range loginWays {
		want := ""
		for _, a := range attempts {
			for i := range 2 { // failures are never cached
				got := try(s, a.name, a.pass)
				if want == "" {
					want = got
				}
				if got != want {
					t.Errorf("%s %q/%q #%d: answer %s, want the same as for bob's wrong password: %s", way, a.name, a.pass, i, got, want)
				}
				hashes := log.take()
				if len(hashes) != 1 {
					t.Fatalf("%s %q/%q #%d: %d bcrypt comparisons, want 1", way, a.name, a.pass, i, len(hashes))
				}
				if c, _ := bcrypt.Cost(hashes[0]); c != a.cost {
					t.Errorf("%s %q/%q #%d: compared at cost %d, want %d", way, a.name, a.pass, i, c, a.cost)
				}
				if !a.known && !bytes.Equal(hashes[0], dummy) {
					t.Errorf("%s %q/%q #%d: compared against %s, not the dummy made at construction", way, a.name, a.pass, i, hashes[0])
				}
			}
		}
		if !strings.HasPrefix(want, "401 ") && way != "basic on the API" {
			t.Errorf("%s: a failed login answered %s, want 401", way, want)
		}
	}
	// The comparer is the one in the path: a right password costs one
	// comparison, then none while it is remembered.
	for i, n := range []int{1, 0} {
		r := req("")
		r.SetBasicAuth("bob", "pw-bob")
		if sub, err := s.Authorize(r, pull); err != nil || sub != "bob" {
			t.Fatalf("bob: %q %v", sub, err)
		}
		if got := len(log.take()); got != n {
			t.Errorf("right password #%d: %d comparisons, want %d", i, got, n)
		}
	}
}

// With no users or tokens no name exists, so the dummy costs the least.
func TestDummyWithoutPrincipals(t *testing.T) {
	t.Parallel()
	s, err := New(Config{AnonymousPull: []string{"*"}, KeyFile: filepath.Join(t.TempDir(), "key.pem")}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost(s.dummy); err != nil || c != bcrypt.MinCost {
		t.Fatalf("dummy cost %d (%v), want %d", c, err, bcrypt.MinCost)
	}
}

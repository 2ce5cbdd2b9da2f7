package fault

import (
	"path"
	"regexp"
	"sync"
	"time"
)

// Request is what a fault matches on.
type Request struct {
	Method string
	Kind   Kind
	Repo   string
	Digest string
}

// Effects is the merged result of every fault that applies to one request.
type Effects struct {
	Delay       time.Duration // sum of delays
	Bandwidth   int64         // smallest cap, 0 = none
	Status      int           // first error fired, 0 = none
	RetryAfter  int           // seconds, with Status
	Cut         int64         // smallest cut, -1 = none
	Corrupt     bool
	Unreachable bool
	IDs         []int // faults that applied
}

// None reports whether no fault applied.
func (e Effects) None() bool { return len(e.IDs) == 0 }

// Body reports whether the body needs wrapping (bandwidth, cut or corrupt).
func (e Effects) Body() bool { return e.Bandwidth > 0 || e.Cut >= 0 || e.Corrupt }

// Set is the live list of faults; safe for concurrent use.
type Set struct {
	mu     sync.Mutex
	nextID int
	rules  []*rule
}

type rule struct {
	f  Fault
	re *regexp.Regexp
}

// NewSet returns a set holding fs (validated, ids assigned).
func NewSet(fs ...Fault) (*Set, error) {
	s := &Set{}
	if _, err := s.Add(fs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Add validates and appends faults (all or none) and returns them with ids.
func (s *Set) Add(fs ...Fault) ([]Fault, error) {
	rules := make([]*rule, 0, len(fs))
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		f.Applied, f.Errors = 0, 0
		r := &rule{f: f}
		if f.RepoRegexp != "" {
			r.re = regexp.MustCompile(f.RepoRegexp) // validated
		}
		rules = append(rules, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(rules))
	for _, r := range rules {
		s.nextID++
		r.f.ID = s.nextID
		s.rules = append(s.rules, r)
		out = append(out, r.f)
	}
	return out, nil
}

// Replace swaps the whole list (all or none).
func (s *Set) Replace(fs ...Fault) ([]Fault, error) {
	tmp := &Set{}
	if _, err := tmp.Add(fs...); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.rules = nil
	s.mu.Unlock()
	return s.Add(fs...)
}

// Remove deletes the fault with the given id and reports whether it existed.
func (s *Set) Remove(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if r.f.ID == id {
			s.rules = append(s.rules[:i:i], s.rules[i+1:]...)
			return true
		}
	}
	return false
}

// Clear removes every fault.
func (s *Set) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// List returns the faults with their counters.
func (s *Set) List() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.rules))
	for _, r := range s.rules {
		out = append(out, r.f)
	}
	return out
}

func (r *rule) matches(req Request) bool {
	f := &r.f
	switch {
	case f.Kind != KindAny && f.Kind != req.Kind,
		f.Method != "" && f.Method != req.Method,
		f.Digest != "" && f.Digest != req.Digest,
		r.re != nil && !r.re.MatchString(req.Repo):
		return false
	case f.Repo != "":
		ok, _ := path.Match(f.Repo, req.Repo)
		return ok
	}
	return true
}

// fires is the deterministic error-rate rule: the k-th applied request
// (k = 1, 2, ...) errors iff ceil(k*rate) > ceil((k-1)*rate). The first
// request always errors; rate 1 errors every time, 0.5 the 1st, 3rd, 5th...,
// 0.25 the 1st, 5th, 9th...; any n consecutive requests see floor or ceil of
// n*rate errors.
func fires(k int64, rate float64) bool {
	const one = 1_000_000
	p := int64(rate*one + 0.5)
	ceil := func(x int64) int64 { return (x*p + one - 1) / one }
	return ceil(k) > ceil(k-1)
}

// Evaluate applies the set to one request: every matching fault whose Count
// is not used up applies (and counts the request); their effects merge.
func (s *Set) Evaluate(req Request) Effects {
	e := Effects{Cut: -1}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		f := &r.f
		if (f.Count > 0 && f.Applied >= f.Count) || !r.matches(req) {
			continue
		}
		f.Applied++
		e.IDs = append(e.IDs, f.ID)
		e.Delay += time.Duration(f.Delay)
		if f.Bandwidth > 0 && (e.Bandwidth == 0 || f.Bandwidth < e.Bandwidth) {
			e.Bandwidth = f.Bandwidth
		}
		if f.Cut != nil && (e.Cut < 0 || *f.Cut < e.Cut) {
			e.Cut = *f.Cut
		}
		e.Corrupt = e.Corrupt || f.Corrupt
		e.Unreachable = e.Unreachable || f.Unreachable
		if f.ErrorRate > 0 && e.Status == 0 && fires(f.Applied, f.ErrorRate) {
			f.Errors++
			e.Status, e.RetryAfter = f.Status, f.RetryAfter
		}
	}
	return e
}

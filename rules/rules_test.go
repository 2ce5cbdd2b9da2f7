package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/units"
)

func aks() Rule {
	return Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*"}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule Rule
		code Code // "" = valid
	}{
		{"aks rule", aks(), ""},
		{"registry wildcard", Rule{Name: "mirror-all", Source: "mcr.microsoft.com/*", Target: "*"}, ""},
		{"repo wildcard", Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*"}, ""},
		{"static", Rule{Name: "runtime", Source: "mcr.microsoft.com/dotnet/runtime", Target: "dotnet/runtime"}, ""},
		{"host with port", Rule{Name: "local", Source: "127.0.0.1:6000/*", Target: "lab/*"}, ""},
		{"name too short", Rule{Name: "abcd", Source: "mcr.microsoft.com/*", Target: "x/*"}, CodeInvalidName},
		{"name too long", Rule{Name: strings.Repeat("a", 51), Source: "mcr.microsoft.com/*", Target: "x/*"}, CodeInvalidName},
		{"name bad char", Rule{Name: "aks_rule", Source: "mcr.microsoft.com/*", Target: "x/*"}, CodeInvalidName},
		{"name 50 ok", Rule{Name: strings.Repeat("a", 50), Source: "mcr.microsoft.com/*", Target: "x/*"}, ""},
		{"source without host", Rule{Name: "nohost", Source: "dotnet/runtime", Target: "dotnet/runtime"}, CodeInvalidSource},
		{"source host only", Rule{Name: "hostonly", Source: "mcr.microsoft.com", Target: "x"}, CodeInvalidSource},
		{"source host slash", Rule{Name: "hostslash", Source: "mcr.microsoft.com/", Target: "x"}, CodeInvalidSource},
		{"source mid wildcard", Rule{Name: "midwild", Source: "mcr.microsoft.com/a*/b", Target: "x/*"}, CodeInvalidSource},
		{"source uppercase", Rule{Name: "upper", Source: "mcr.microsoft.com/Dotnet", Target: "dotnet"}, CodeInvalidSource},
		{"target empty", Rule{Name: "empty", Source: "mcr.microsoft.com/a", Target: ""}, CodeInvalidTarget},
		{"target dotdot", Rule{Name: "dotdot", Source: "mcr.microsoft.com/a", Target: "../a"}, CodeInvalidTarget},
		{"target bare star prefix", Rule{Name: "starpre", Source: "mcr.microsoft.com/*", Target: "a*"}, CodeInvalidTarget},
		{"wildcard source static target", Rule{Name: "mismatch", Source: "mcr.microsoft.com/*", Target: "x"}, CodeWildcardMismatch},
		{"static source wildcard target", Rule{Name: "mismatch2", Source: "mcr.microsoft.com/x", Target: "x/*"}, CodeWildcardMismatch},
		{"negative ttl", Rule{Name: "negttl", Source: "mcr.microsoft.com/*", Target: "x/*", TagTTL: units.Duration(-time.Second)}, CodeInvalidTTL},
		{"tag list local", Rule{Name: "local", Source: "mcr.microsoft.com/*", Target: "x/*", TagList: TagListLocal}, ""},
		{"tag list upstream", Rule{Name: "upstr", Source: "mcr.microsoft.com/*", Target: "x/*", TagList: TagListUpstream}, ""},
		{"tag list unknown", Rule{Name: "cached", Source: "mcr.microsoft.com/*", Target: "x/*", TagList: "cached"}, CodeInvalidTagList},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tt.rule)
			checkCode(t, err, tt.code)
		})
	}
}

func checkCode(t *testing.T, err error, want Code) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want %s, got %v", want, err)
	}
	if ve.Code != want {
		t.Fatalf("want code %s, got %s (%v)", want, ve.Code, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error does not wrap ErrInvalid")
	}
}

func TestNewSetConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules []Rule
		code  Code
	}{
		{"star blocks namespace", []Rule{
			{Name: "all-mcr", Source: "mcr.microsoft.com/*", Target: "*"},
			{Name: "library", Source: "docker.example.com/library/*", Target: "library/*"}}, CodeWildcardOverlap},
		{"namespace blocks sub-namespace", []Rule{
			{Name: "library", Source: "docker.example.com/library/*", Target: "library/*"},
			{Name: "dotnet-lib", Source: "mcr.microsoft.com/dotnet/*", Target: "library/dotnet/*"}}, CodeWildcardOverlap},
		{"sub-namespace first still blocked", []Rule{
			{Name: "dotnet-lib", Source: "mcr.microsoft.com/dotnet/*", Target: "library/dotnet/*"},
			{Name: "library", Source: "docker.example.com/library/*", Target: "library/*"}}, CodeWildcardOverlap},
		{"same wildcard target", []Rule{aks(),
			{Name: "other-mcr", Source: "other.example.com/*", Target: "aks-managed-repository/*"}}, CodeWildcardOverlap},
		{"sibling namespaces ok", []Rule{
			{Name: "library", Source: "docker.example.com/library/*", Target: "library/*"},
			{Name: "libraryx", Source: "docker.example.com/libraryx/*", Target: "libraryx/*"}}, ""},
		{"static under wildcard ok", []Rule{aks(),
			{Name: "pinned-pause", Source: "other.example.com/pause", Target: "aks-managed-repository/oss/kubernetes/pause"}}, ""},
		{"two statics same target", []Rule{
			{Name: "one-rule", Source: "mcr.microsoft.com/a", Target: "a"},
			{Name: "two-rule", Source: "mcr.microsoft.com/b", Target: "a"}}, CodeDuplicateTarget},
		{"duplicate name", []Rule{aks(),
			{Name: "AKS-managed-mcr", Source: "mcr.microsoft.com/a", Target: "a"}}, CodeDuplicateName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSet(tt.rules)
			checkCode(t, err, tt.code)
		})
	}
}

func TestMaxRules(t *testing.T) {
	t.Parallel()
	rs := make([]Rule, 0, MaxRules+1)
	for i := 0; i <= MaxRules; i++ {
		rs = append(rs, Rule{Name: fmt.Sprintf("rule-%04d", i), Source: fmt.Sprintf("mcr.microsoft.com/r%d", i), Target: fmt.Sprintf("r%d", i)})
	}
	if _, err := NewSet(rs[:MaxRules]); err != nil {
		t.Fatalf("%d rules must be accepted: %v", MaxRules, err)
	}
	_, err := NewSet(rs)
	checkCode(t, err, CodeTooMany)
}

func TestMatch(t *testing.T) {
	t.Parallel()
	s, err := NewSet([]Rule{
		aks(),
		{Name: "pinned-pause", Source: "other.example.com/mirror/pause", Target: "aks-managed-repository/oss/kubernetes/pause"},
		{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo, rule, host, upstream string
	}{
		{"aks-managed-repository/oss/kubernetes/kube-proxy", "aks-managed-mcr", "mcr.microsoft.com", "oss/kubernetes/kube-proxy"},
		{"aks-managed-repository/oss/kubernetes/pause", "pinned-pause", "other.example.com", "mirror/pause"},
		{"dotnet/runtime", "dotnet", "mcr.microsoft.com", "dotnet/runtime"},
		{"dotnet/sdk/nightly", "dotnet", "mcr.microsoft.com", "dotnet/sdk/nightly"},
	}
	for _, tt := range tests {
		m, ok := s.Match(tt.repo)
		if !ok {
			t.Errorf("%s: no match", tt.repo)
			continue
		}
		if m.Rule.Name != tt.rule || m.Host != tt.host || m.Repository != tt.upstream {
			t.Errorf("%s: got rule %s %s/%s, want %s %s/%s", tt.repo, m.Rule.Name, m.Host, m.Repository, tt.rule, tt.host, tt.upstream)
		}
	}
	all, _ := NewSet([]Rule{
		{Name: "everything", Source: "registry.example.com:5000/*", Target: "*"},
		{Name: "static-one", Source: "mcr.microsoft.com/a/b", Target: "library/nginx"},
	})
	for repo, want := range map[string]string{"library/nginx": "static-one", "dotnet": "everything", "x/y/z": "everything"} {
		if m, ok := all.Match(repo); !ok || m.Rule.Name != want {
			t.Errorf("%s: got %+v %v, want rule %s", repo, m, ok, want)
		}
	}
	if m, _ := all.Match("x/y/z"); m.Repository != "x/y/z" || m.Host != "registry.example.com:5000" {
		t.Errorf("registry-level mapping: %+v", m)
	}
	only, _ := NewSet([]Rule{aks()})
	for _, repo := range []string{"aks-managed-repository", "other/repo", "aks-managed-repositoryx/a"} {
		if m, ok := only.Match(repo); ok {
			t.Errorf("%s: unexpected match %+v", repo, m)
		}
	}
}

func TestSetChanges(t *testing.T) {
	t.Parallel()
	s, _ := NewSet([]Rule{aks()})
	s2, err := s.With(Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s2.Len() != 2 {
		t.Fatalf("With must not change the receiver: %d, %d", s.Len(), s2.Len())
	}
	if _, err := s2.With(Rule{Name: "dotnet2", Source: "mcr.microsoft.com/x/*", Target: "dotnet/x/*"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("overlap must be refused, got %v", err)
	}
	_, err = s2.Update(Rule{Name: "dotnet", Source: "mcr.microsoft.com/other/*"})
	checkCode(t, err, CodeImmutable)
	s3, err := s2.Update(Rule{Name: "dotnet", CredentialSet: "creds"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s3.Get("dotnet"); r.CredentialSet != "creds" || r.Target != "dotnet/*" {
		t.Fatalf("update: %+v", r)
	}
	s4, err := s3.Without("DOTNET")
	if err != nil || s4.Len() != 1 {
		t.Fatalf("without: %v %d", err, s4.Len())
	}
	if _, err := s4.Without("dotnet"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if _, err := s4.Update(Rule{Name: "dotnet"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestTTLAndExisting(t *testing.T) {
	t.Parallel()
	if got := aks().TTL(); got != DefaultTagTTL {
		t.Fatalf("default TTL %v", got)
	}
	r := aks()
	r.TagTTL = units.Duration(time.Minute)
	if r.TTL() != time.Minute {
		t.Fatalf("TTL %v", r.TTL())
	}
	err := CheckExisting(aks(), []string{"myteam/app", "aks-managed-repository/custom"})
	checkCode(t, err, CodeExistingRepoMatch)
	if err := CheckExisting(aks(), []string{"aks-managed-repository", "myteam/app"}); err != nil {
		t.Fatalf("unexpected: %v", err)
	}
}

func TestValidRepository(t *testing.T) {
	t.Parallel()
	good := []string{"a", "oss/kubernetes/pause", "a.b_c__d-e--f", "aks-managed-repository/oss/kubernetes/pause"}
	bad := []string{"", "A", "a//b", "/a", "a/", "..", "a/../b", "%2e", "a b", "a/.b", strings.Repeat("a", 256)}
	for _, g := range good {
		if !ValidRepository(g) {
			t.Errorf("%q should be valid", g)
		}
	}
	for _, b := range bad {
		if ValidRepository(b) {
			t.Errorf("%q should be invalid", b)
		}
	}
}

// TestValidateMessages checks that a refused rule says what to write.
func TestValidateMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source string
		want   string
	}{
		{"mcr.microsoft.com", `source "mcr.microsoft.com" names a registry but no repository: add a repository path, or /* for every repository, e.g. mcr.microsoft.com/*`},
		{"127.0.0.1:6000", `e.g. 127.0.0.1:6000/*`},
		{"dotnet/runtime", `source "dotnet/runtime" must start with a registry host: the upstream repository's full name, e.g. mcr.microsoft.com/*`},
		{"dotnet", `source "dotnet" must start with a registry host`},
		{"mcr.microsoft.com/", `needs a repository path or /* after the host`},
	} {
		err := Validate(Rule{Name: "dotnet", Source: tc.source, Target: "dotnet"})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Code != CodeInvalidSource || !strings.Contains(ve.Reason, tc.want) {
			t.Errorf("source %q: %v; want SourceRepositoryInvalid saying %q", tc.source, err, tc.want)
		}
	}
	err := Validate(Rule{Name: "dotnet", Source: "mcr.microsoft.com/*", Target: "x/*", TagList: "all"})
	if err == nil || !strings.Contains(err.Error(), `tagList "all" must be upstream or local`) {
		t.Errorf("tagList all: %v", err)
	}
}

// TestRuleJSON pins the JSON field names: the control module's API and
// stored state are a contract.
func TestRuleJSON(t *testing.T) {
	t.Parallel()
	r := Rule{Name: "dotnet", Source: "mcr.microsoft.com/dotnet/*", Target: "dotnet/*", CredentialSet: "creds", TagTTL: units.Duration(5 * time.Minute), TagList: TagListLocal}
	b, err := json.Marshal(r)
	want := `{"name":"dotnet","sourceRepository":"mcr.microsoft.com/dotnet/*","targetRepository":"dotnet/*","credentialSet":"creds","tagTTL":"5m0s","tagList":"local"}`
	if err != nil || string(b) != want {
		t.Fatalf("json %s, %v\nwant %s", b, err, want)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	if b, _ := json.Marshal(Rule{Name: "a", Source: "b", Target: "c"}); string(b) != `{"name":"a","sourceRepository":"b","targetRepository":"c"}` {
		t.Errorf("optional fields written: %s", b)
	}
}

func TestUpdateTagList(t *testing.T) {
	t.Parallel()
	s, err := NewSet([]Rule{aks()})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.Update(Rule{Name: "aks-managed-mcr", TagList: TagListLocal})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s2.Get("aks-managed-mcr"); r.TagList != TagListLocal {
		t.Fatalf("tagList %q after update", r.TagList)
	}
	s3, err := s2.Update(Rule{Name: "aks-managed-mcr", CredentialSet: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s3.Get("aks-managed-mcr"); r.TagList != TagListLocal || r.CredentialSet != "c" {
		t.Fatalf("update without tagList changed it: %+v", r)
	}
}

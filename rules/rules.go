// Package rules holds ACR-style cache rules: their validation and the mapping
// from a local repository to its upstream repository. It is pure: no I/O and
// no imports of the rest of airlock but the internal/units leaf (durations).
package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/airlock/airlock/internal/units"
)

// DefaultTagTTL is how long a tag fetched from upstream is served without
// revalidation when a rule does not set TagTTL.
const DefaultTagTTL = 5 * time.Minute

// MaxRules is the most rules one registry may hold (ACR's limit).
const MaxRules = 1000

// Tag listing modes of a rule (Rule.TagList).
const (
	// TagListUpstream lists the union of the upstream repository's tags
	// and the local ones (the default, when TagList is empty).
	TagListUpstream = "upstream"
	// TagListLocal lists only the tags held locally, as ACR does.
	TagListLocal = "local"
)

// Rule maps a local target repository (or namespace, with a trailing "/*",
// or every repository, with "*") to an upstream source that includes the
// registry host, e.g. "mcr.microsoft.com/*".
//
// It is the one cache rule model of airlock. Its field names are contracts:
// the yaml names are the configuration file's (rules:), the json names the
// control module's API and stored state (ACR's sourceRepository and
// targetRepository).
type Rule struct {
	Name          string         `json:"name" yaml:"name"`
	Source        string         `json:"sourceRepository" yaml:"source"`
	Target        string         `json:"targetRepository" yaml:"target"`
	CredentialSet string         `json:"credentialSet,omitempty" yaml:"credentialSet,omitempty"`
	TagTTL        units.Duration `json:"tagTTL,omitempty" yaml:"tagTTL,omitempty"`
	// TagList is TagListUpstream (or empty) or TagListLocal.
	TagList string `json:"tagList,omitempty" yaml:"tagList,omitempty"`
}

// Wildcard reports whether the rule maps a namespace rather than one repository.
func (r Rule) Wildcard() bool { return strings.HasSuffix(r.Target, "*") }

// TTL is the rule's tag TTL, or DefaultTagTTL when unset.
func (r Rule) TTL() time.Duration {
	if r.TagTTL > 0 {
		return time.Duration(r.TagTTL)
	}
	return DefaultTagTTL
}

// UpstreamHost is the registry host part of Source.
func (r Rule) UpstreamHost() string {
	host, _, _ := strings.Cut(r.Source, "/")
	return host
}

// targetPrefix is the local namespace a wildcard rule covers ("" for "*"),
// or the repository a static rule names.
func (r Rule) targetPrefix() string {
	return strings.TrimSuffix(strings.TrimSuffix(r.Target, "*"), "/")
}

// sourcePrefix is the upstream repository path (without host) the target
// prefix maps to; "" when the rule covers the whole upstream registry.
func (r Rule) sourcePrefix() string {
	_, path, _ := strings.Cut(r.Source, "/")
	return strings.TrimSuffix(strings.TrimSuffix(path, "*"), "/")
}

// Code names why a rule was refused. The names follow ACR's error codes where
// ACR has one.
type Code string

// Validation failure codes.
const (
	CodeInvalidName       Code = "CacheRuleNameInvalid"
	CodeInvalidSource     Code = "SourceRepositoryInvalid"
	CodeInvalidTarget     Code = "TargetRepositoryInvalid"
	CodeWildcardMismatch  Code = "WildcardMismatch"
	CodeDuplicateName     Code = "CacheRuleNameAlreadyExists"
	CodeDuplicateTarget   Code = "TargetRepositoryAlreadyHasCacheRule"
	CodeWildcardOverlap   Code = "WildcardTargetOverlap"
	CodeTooMany           Code = "CacheRuleQuotaExceeded"
	CodeImmutable         Code = "CacheRuleImmutable"
	CodeNotFound          Code = "CacheRuleNotFound"
	CodeInvalidTTL        Code = "TagTTLInvalid"
	CodeInvalidTagList    Code = "TagListInvalid"
	CodeExistingRepoMatch Code = "TargetRepositoryPrefixMatchesExistingRegistries"
)

// Sentinel errors, matched with errors.Is against a *ValidationError.
var (
	// ErrInvalid is wrapped by every *ValidationError.
	ErrInvalid = errors.New("invalid cache rule")
	// ErrNotFound is returned when a named rule does not exist.
	ErrNotFound = errors.New("cache rule not found")
)

// ValidationError says which rule was refused and why.
type ValidationError struct {
	Rule   string // the rule's name, as given
	Code   Code
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("cache rule %q: %s: %s", e.Rule, e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true, and ErrNotFound for CodeNotFound.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || (target == ErrNotFound && e.Code == CodeNotFound)
}

func invalid(rule string, code Code, format string, args ...any) error {
	return &ValidationError{Rule: rule, Code: code, Reason: fmt.Sprintf(format, args...)}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9-]{5,50}$`)
	// hostRE accepts a DNS name or IPv4 address with an optional port.
	hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)
)

// maxRepoLen bounds a repository name, as the distribution spec's reference
// grammar does for a whole name.
const maxRepoLen = 255

// ValidRepository reports whether name is a valid OCI repository name.
func ValidRepository(name string) bool {
	if name == "" || len(name) > maxRepoLen {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

// validComponent matches the distribution spec's path component,
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, without a regexp: it is on the path of
// every request.
func validComponent(c string) bool {
	if c == "" {
		return false
	}
	sepStart := -1 // start of the separator run being read, or -1
	for i := 0; i < len(c); i++ {
		b := c[i]
		if b >= 'a' && b <= 'z' || b >= '0' && b <= '9' {
			if sepStart >= 0 {
				if !validSeparator(c[sepStart:i]) {
					return false
				}
				sepStart = -1
			}
			continue
		}
		if b != '.' && b != '_' && b != '-' {
			return false
		}
		if i == 0 {
			return false
		}
		if sepStart < 0 {
			sepStart = i
		}
	}
	return sepStart < 0
}

func validSeparator(s string) bool {
	switch s {
	case ".", "_", "__":
		return true
	}
	return strings.Trim(s, "-") == ""
}

// Validate checks one rule on its own (not against other rules).
func Validate(r Rule) error {
	if !nameRE.MatchString(r.Name) {
		return invalid(r.Name, CodeInvalidName, "name must be 5-50 characters of letters, digits and hyphens")
	}
	if r.TagTTL < 0 {
		return invalid(r.Name, CodeInvalidTTL, "tagTTL must not be negative")
	}
	switch r.TagList {
	case "", TagListUpstream, TagListLocal:
	default:
		return invalid(r.Name, CodeInvalidTagList, "tagList %q must be %s or %s", r.TagList, TagListUpstream, TagListLocal)
	}
	host, path, ok := strings.Cut(r.Source, "/")
	if !ok && hostRE.MatchString(host) && looksLikeHost(host) {
		return invalid(r.Name, CodeInvalidSource, "source %q names a registry but no repository: add a repository path, or /* for every repository, e.g. %s/*", r.Source, r.Source)
	}
	if !ok || !hostRE.MatchString(host) || !looksLikeHost(host) {
		return invalid(r.Name, CodeInvalidSource, "source %q must start with a registry host: the upstream repository's full name, e.g. mcr.microsoft.com/*", r.Source)
	}
	srcWild, err := checkPattern(path, true)
	if err != nil {
		return invalid(r.Name, CodeInvalidSource, "source %q: %v", r.Source, err)
	}
	tgtWild, err := checkPattern(r.Target, false)
	if err != nil {
		return invalid(r.Name, CodeInvalidTarget, "target %q: %v", r.Target, err)
	}
	if srcWild != tgtWild {
		return invalid(r.Name, CodeWildcardMismatch, "source %q and target %q must both end in /* or neither", r.Source, r.Target)
	}
	return nil
}

// looksLikeHost tells a registry host from a first repository component, the
// way reference parsers do: it has a dot or a port, or is localhost.
func looksLikeHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// checkPattern validates a repository path that may end in "/*" (or be "*"
// where allowed) and reports whether it is a wildcard.
func checkPattern(p string, isSource bool) (bool, error) {
	switch {
	case p == "*":
		return true, nil
	case p == "":
		if isSource {
			return false, errors.New("needs a repository path or /* after the host")
		}
		return false, errors.New("must not be empty")
	case strings.HasSuffix(p, "/*"):
		if !ValidRepository(strings.TrimSuffix(p, "/*")) {
			return false, errors.New("namespace before /* is not a valid repository path")
		}
		return true, nil
	case strings.Contains(p, "*"):
		return false, errors.New("a wildcard is allowed only as a final /* or as the whole target")
	case !ValidRepository(p):
		return false, errors.New("not a valid repository path (lowercase letters, digits, separators . _ __ -, components joined by /)")
	}
	return false, nil
}

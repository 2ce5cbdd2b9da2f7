// Package fault describes, parses and evaluates the faults the MAR emulator
// injects into matching requests: header delays, bandwidth caps, error
// statuses, cut or corrupted bodies, and dropped connections.
package fault

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/internal/units"
)

// Kind is the kind of request, as routed by the emulator.
type Kind string

// Request kinds. A blob fetch by a client is a KindBlob GET on the registry
// listener (answered 307) followed by a KindBlobData GET on the data listener.
const (
	KindAny       Kind = "any"
	KindPing      Kind = "ping"      // GET /v2/
	KindToken     Kind = "token"     // /oauth2/token
	KindCatalog   Kind = "catalog"   // /v2/_catalog
	KindTags      Kind = "tags"      // /v2/<name>/tags/list
	KindManifest  Kind = "manifest"  // /v2/<name>/manifests/<ref>
	KindBlob      Kind = "blob"      // /v2/<name>/blobs/<digest> (registry listener)
	KindBlobData  Kind = "blob-data" // blob bytes on the data listener
	KindReferrers Kind = "referrers" // /v2/<name>/referrers/<digest>
	KindOther     Kind = "other"     // anything else (uploads, unknown paths)
)

// Kinds lists every request kind except KindAny.
func Kinds() []Kind {
	return []Kind{KindPing, KindToken, KindCatalog, KindTags, KindManifest, KindBlob, KindBlobData, KindReferrers, KindOther}
}

// ErrInvalid is wrapped by every parse or validation error.
var ErrInvalid = errors.New("invalid fault")

// Fault is one rule: a match and the actions applied to matching requests.
// Empty match fields match everything.
type Fault struct {
	ID int `json:"id,omitempty"` // assigned by Set.Add

	Kind       Kind   `json:"kind,omitempty"`       // default any
	Method     string `json:"method,omitempty"`     // e.g. GET, HEAD
	Repo       string `json:"repo,omitempty"`       // path.Match glob: "oss/kubernetes/*"
	RepoRegexp string `json:"repoRegexp,omitempty"` // Go regexp, unanchored
	Digest     string `json:"digest,omitempty"`     // manifest or blob digest

	Delay       units.Duration `json:"delay,omitempty"`       // before the response header
	Bandwidth   int64          `json:"bandwidth,omitempty"`   // body bytes per second
	ErrorRate   float64        `json:"errorRate,omitempty"`   // 0..1, see Set.Evaluate
	Status      int            `json:"status,omitempty"`      // error status (default 503)
	RetryAfter  int            `json:"retryAfter,omitempty"`  // seconds, sent as Retry-After with the error
	Cut         *int64         `json:"cut,omitempty"`         // close the connection after this many body bytes
	Corrupt     bool           `json:"corrupt,omitempty"`     // flip body bytes, keep headers
	Unreachable bool           `json:"unreachable,omitempty"` // reset the connection, no response
	Count       int64          `json:"count,omitempty"`       // apply to the first Count matches only; 0 = all

	Applied int64 `json:"applied"` // read-only: requests the fault applied to
	Errors  int64 `json:"errors"`  // read-only: error responses it caused
}

// Validate fills defaults (ErrorRate 1 when only Status is set, Status 503
// when only ErrorRate is set) and checks the fault.
func (f *Fault) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if f.Kind == "" {
		f.Kind = KindAny
	}
	if f.Kind != KindAny && !slices.Contains(Kinds(), f.Kind) {
		return bad("unknown kind %q (want any, %v)", f.Kind, Kinds())
	}
	f.Method = strings.ToUpper(f.Method)
	if f.Repo != "" {
		if _, err := path.Match(f.Repo, ""); err != nil {
			return bad("repo glob %q: %v", f.Repo, err)
		}
	}
	if f.RepoRegexp != "" {
		if _, err := regexp.Compile(f.RepoRegexp); err != nil {
			return bad("repo regexp %q: %v", f.RepoRegexp, err)
		}
	}
	if f.Digest != "" {
		if _, err := v1.NewHash(f.Digest); err != nil {
			return bad("digest %q: %v", f.Digest, err)
		}
	}
	if f.Status != 0 && f.ErrorRate == 0 {
		f.ErrorRate = 1
	}
	if f.ErrorRate != 0 && f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return bad("error rate %v not in [0,1]", f.ErrorRate)
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return bad("status %d not in 400..599", f.Status)
	case f.Delay < 0 || f.Bandwidth < 0 || f.RetryAfter < 0 || f.Count < 0 || (f.Cut != nil && *f.Cut < 0):
		return bad("negative value")
	case f.Delay == 0 && f.Bandwidth == 0 && f.ErrorRate == 0 && f.Cut == nil && !f.Corrupt && !f.Unreachable:
		return bad("no action (want delay, bw, status/rate, cut, corrupt or unreachable)")
	}
	return nil
}

// Parse reads the flag syntax: comma-separated key=value pairs, e.g.
//
//	kind=blob-data,cut=1000,count=1
//	kind=manifest,repo=oss/kubernetes/*,status=429,retry-after=2,rate=0.5
//	kind=any,unreachable
//
// Keys: kind, method, repo (glob), repo-re (regexp, no commas), digest,
// delay (Go duration), bw (bytes/s, units like 1MiB allowed), rate (0..1),
// status, retry-after (seconds), cut (bytes), corrupt, unreachable, count.
func Parse(spec string) (Fault, error) {
	var f Fault
	for _, kv := range strings.Split(spec, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(kv), "=")
		var err error
		switch k {
		case "kind":
			f.Kind = Kind(v)
		case "method":
			f.Method = v
		case "repo":
			f.Repo = v
		case "repo-re":
			f.RepoRegexp = v
		case "digest":
			f.Digest = v
		case "delay":
			f.Delay, err = units.ParseDuration(v)
		case "bw", "bandwidth":
			f.Bandwidth, err = units.ParseBytes(strings.TrimSuffix(v, "/s"))
		case "rate", "error-rate":
			f.ErrorRate, err = strconv.ParseFloat(v, 64)
		case "status":
			f.Status, err = strconv.Atoi(v)
		case "retry-after":
			f.RetryAfter, err = strconv.Atoi(v)
		case "cut":
			var n int64
			n, err = units.ParseBytes(v)
			f.Cut = &n
		case "count":
			f.Count, err = strconv.ParseInt(v, 10, 64)
		case "corrupt", "unreachable":
			b := true
			if hasValue {
				b, err = strconv.ParseBool(v)
			}
			if k == "corrupt" {
				f.Corrupt = b
			} else {
				f.Unreachable = b
			}
		default:
			return Fault{}, fmt.Errorf("%w: %q: unknown key %q", ErrInvalid, spec, k)
		}
		if err != nil {
			return Fault{}, fmt.Errorf("%w: %q: %s=%s: %v", ErrInvalid, spec, k, v, err)
		}
	}
	if err := f.Validate(); err != nil {
		return Fault{}, fmt.Errorf("%q: %w", spec, err)
	}
	return f, nil
}

// String returns the fault in Parse syntax.
func (f Fault) String() string {
	var p []string
	add := func(k, v string, ok bool) {
		if ok {
			p = append(p, k+"="+v)
		}
	}
	add("kind", string(f.Kind), f.Kind != "")
	add("method", f.Method, f.Method != "")
	add("repo", f.Repo, f.Repo != "")
	add("repo-re", f.RepoRegexp, f.RepoRegexp != "")
	add("digest", f.Digest, f.Digest != "")
	add("delay", time.Duration(f.Delay).String(), f.Delay != 0)
	add("bw", strconv.FormatInt(f.Bandwidth, 10), f.Bandwidth != 0)
	add("rate", strconv.FormatFloat(f.ErrorRate, 'g', -1, 64), f.ErrorRate != 0)
	add("status", strconv.Itoa(f.Status), f.Status != 0)
	add("retry-after", strconv.Itoa(f.RetryAfter), f.RetryAfter != 0)
	if f.Cut != nil {
		add("cut", strconv.FormatInt(*f.Cut, 10), true)
	}
	add("corrupt", "true", f.Corrupt)
	add("unreachable", "true", f.Unreachable)
	add("count", strconv.FormatInt(f.Count, 10), f.Count != 0)
	return strings.Join(p, ",")
}

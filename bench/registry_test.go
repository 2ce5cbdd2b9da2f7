package bench

import (
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock/airlock/upstream/mar"
)

func TestParseRegistry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, prefix string
		want        planTarget
	}{
		{"http://127.0.0.1:5000", "", planTarget{Name: "127.0.0.1:5000", URL: "http://127.0.0.1:5000"}},
		{"http://127.0.0.1:5000", "aks-managed-repository/", planTarget{Name: "127.0.0.1:5000/aks-managed-repository", URL: "http://127.0.0.1:5000", Prefix: "aks-managed-repository/"}},
		{"https://r.example/v2/aks-managed-repository", "", planTarget{Name: "r.example/aks-managed-repository", URL: "https://r.example", Prefix: "aks-managed-repository/"}},
		{"https://r.example/team/mirror/", "other/", planTarget{Name: "r.example/team/mirror", URL: "https://r.example", Prefix: "team/mirror/"}},
		{"https://r.example/v2/", "", planTarget{Name: "r.example", URL: "https://r.example"}},
	}
	for _, c := range cases {
		got, err := parseRegistry(c.raw, c.prefix)
		if err != nil || got != c.want {
			t.Errorf("parseRegistry(%q, %q) = %+v, %v; want %+v", c.raw, c.prefix, got, err, c.want)
		}
	}
	for _, raw := range []string{"127.0.0.1:5000", "ftp://x", "http://", "http://u:p@x", "http://x?y=1", "http://x/UPPER"} {
		if _, err := parseRegistry(raw, ""); !errors.Is(err, ErrUsage) {
			t.Errorf("parseRegistry(%q): %v", raw, err)
		}
	}
}

func TestParseImages(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "images.txt")
	digest := "sha256:" + strings.Repeat("a", 64)
	os.WriteFile(f, []byte("# bootstrap\nmcr.microsoft.com/oss/kubernetes/pause:3.10\n\nnginx  # docker hub\nr.example/app@"+digest+"\n"), 0o644)
	got, err := parseImages(f, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []planImage{
		{Name: "mcr.microsoft.com/oss/kubernetes/pause:3.10", Repo: "oss/kubernetes/pause", Ref: "3.10"},
		{Name: "nginx", Repo: "library/nginx", Ref: "latest"},
		{Name: "r.example/app@" + digest, Repo: "app", Ref: digest},
	}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("image %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if bs, err := parseImages("", "1.31"); err != nil || len(bs) < 5 || !strings.HasPrefix(bs[0].Name, "mcr.microsoft.com/") {
		t.Fatalf("bootstrap set: %v %v", bs, err)
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	for _, c := range []struct{ file, minor string }{{empty, ""}, {filepath.Join(t.TempDir(), "none"), ""}, {"", "1.2"}} {
		if _, err := parseImages(c.file, c.minor); !errors.Is(err, ErrUsage) {
			t.Errorf("parseImages(%q, %q): %v", c.file, c.minor, err)
		}
	}
}

// registryRun is a registry run of the bench against url with opts.
func registryRun(t *testing.T, opts Options) (*Report, error) {
	t.Helper()
	opts.Out = t.TempDir()
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain() // never the machine's Docker config
	}
	opts.RunTimeout = time.Minute
	return RunRegistries(t.Context(), opts)
}

// The preflight stops a run before any load, in one line saying what is
// wrong: an unreachable registry, something that is not a registry, a
// 401, a missing image, a certificate nobody trusts.
func TestPreflightErrors(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	unreachable := "http://" + closed.Addr().String()
	closed.Close()
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notRegistry.Close)
	var loads int
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			loads++
		}
		w.Header().Set("Www-Authenticate", `Basic realm="test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	t.Cleanup(locked.Close)
	tlsSrv := httptest.NewTLSServer(bareHandler(m.Catalog()))
	t.Cleanup(tlsSrv.Close)
	missing := filepath.Join(t.TempDir(), "images.txt")
	os.WriteFile(missing, []byte("mcr.microsoft.com/oss/kubernetes/pause:3.10\nmcr.microsoft.com/oss/kubernetes/nope:1.0\n"), 0o644)

	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"unreachable", Options{Registries: []string{unreachable}}, "is unreachable: "},
		{"not a registry", Options{Registries: []string{notRegistry.URL}}, "GET /v2/ answered 404 Not Found: not an OCI registry"},
		{"401", Options{Registries: []string{locked.URL}}, "401 Unauthorized pulling mcr.microsoft.com/oss/kubernetes/pause:3.10 with no credentials (anonymous)"},
		{"missing image", Options{Registries: []string{m.URL()}, ImagesFile: missing}, "image mcr.microsoft.com/oss/kubernetes/nope:1.0 not found on " + m.URL()},
		{"untrusted certificate", Options{Registries: []string{tlsSrv.URL}}, "TLS: "},
	}
	for _, c := range cases {
		rep, err := registryRun(t, c.opts)
		t.Logf("%s: %v", c.name, err)
		if err == nil || rep != nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line containing %q", c.name, err, c.want)
		}
	}
	if loads != 0 {
		t.Errorf("%d blob requests reached the locked registry", loads)
	}
	if n := m.Stats().Sum(marBlobData).Count; n != 0 {
		t.Errorf("the missing-image run pulled %d blobs", n)
	}
}

// A registry with a certificate from a private CA, on a loopback address
// (where ggcr would pick plain HTTP): --ca makes it trusted and nodes pull
// over TLS.
func TestRegistryRunWithCA(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	srv := httptest.NewTLSServer(bareHandler(m.Catalog()))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	rep, err := registryRun(t, Options{Registries: []string{srv.URL}, Nodes: 3, Runs: 1, Auth: AuthOptions{CA: ca}})
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Results[0].Runs[0]
	if run.FailedPulls != 0 || run.Clients != 3 || len(run.PerNode) != 3 { // the server speaks nothing but TLS
		t.Fatalf("run over TLS: %d failed (%s), %d nodes", run.FailedPulls, run.FirstFailure, run.Clients)
	}
}

// A run against the emulator itself: every node fetches every blob once,
// counted per blob from its /_mar/stats; the report has each node's
// numbers, each image's times and the histograms.
func TestRegistryRunDirect(t *testing.T) {
	t.Parallel()
	m := startMAR(t)
	var progress []int
	rep, err := registryRun(t, Options{Registries: []string{m.URL()}, Nodes: 4, Runs: 2, Arrival: Arrival{Kind: ArrivalRolling, Surge: 2},
		NodeProgress: func(done, _, _, total int) { progress = append(progress, done, total) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || len(rep.Results[0].Runs) != 2 || rep.Results[0].Key() != "pull @rolling:2" || len(rep.Registries) != 1 {
		t.Fatalf("results %+v", rep.Results)
	}
	if rep.Registries[0].Upstream != m.URL()+"/_mar/stats" || rep.Registries[0].Credentials != "no credentials (anonymous)" {
		t.Errorf("registry info %+v", rep.Registries[0])
	}
	for _, run := range rep.Results[0].Runs {
		u := run.Upstream
		if run.FailedPulls != 0 || u.Source != sourceMAR || u.FetchesPerBlobMin != 4 || u.FetchesPerBlobMax != 4 || u.Blobs != rep.Catalog.Blobs {
			t.Fatalf("run %d: %d failed, upstream %s %d-%d fetches per blob over %d blobs", run.Run, run.FailedPulls, u.Source, u.FetchesPerBlobMin, u.FetchesPerBlobMax, u.Blobs)
		}
		if len(run.PerNode) != 4 || run.Hist == nil || run.Hist.Pull.Count() != 4 || len(run.Images) != len(rep.Catalog.Images) || run.Agents != nil {
			t.Fatalf("run %d: %d records, hist %+v, %d images", run.Run, len(run.PerNode), run.Hist, len(run.Images))
		}
		var bytes int64
		for _, n := range run.PerNode {
			bytes += n.Bytes
		}
		if bytes != run.Bytes || run.TTFB.N != int(run.Hist.TTFB.Count()) || run.Images[0].Pull.N != 4 {
			t.Fatalf("run %d: records %d bytes vs %d; ttfb %d vs %d", run.Run, bytes, run.Bytes, run.TTFB.N, run.Hist.TTFB.Count())
		}
	}
	if len(progress) < 2 || progress[len(progress)-2] != 4 || progress[len(progress)-1] != 4 {
		t.Errorf("progress %v does not end at 4 of 4", progress)
	}
}

// Credentials: flags, the Docker config through the keychain, or the ACR
// exchange; bad combinations are usage errors.
func TestCredentials(t *testing.T) {
	t.Setenv("BENCH_TEST_PW", "s3cret")
	reg, _ := name.NewRegistry("r.example")
	a := AuthOptions{Username: "u", PasswordEnv: "BENCH_TEST_PW"}
	c, err := a.credentialsFor(reg, nil)
	if err != nil || c.String() != "user u" {
		t.Fatalf("%v %v", c, err)
	}
	if u, p, ok := a.basic(); !ok || u != "u" || p != "s3cret" {
		t.Fatalf("basic %q %q", u, p)
	}
	kc := keychainOf{"r.example": &authn.Basic{Username: "d", Password: "p"}}
	if c, err := (&AuthOptions{}).credentialsFor(reg, kc); err != nil || !strings.Contains(c.String(), "Docker config") {
		t.Fatalf("keychain: %v %v", c, err)
	}
	if c, _ := (&AuthOptions{ACRExchange: true, Username: "u", PasswordEnv: "BENCH_TEST_PW"}).credentialsFor(reg, nil); !strings.Contains(c.String(), "ACR token exchange as u") {
		t.Fatalf("acr: %v", c)
	}
	for _, bad := range []AuthOptions{{Username: "u"}, {PasswordEnv: "BENCH_TEST_PW"}, {Username: "u", PasswordEnv: "BENCH_TEST_UNSET"},
		{ACRExchange: true}, {AADTokenEnv: "BENCH_TEST_PW"}} {
		if err := bad.validate(); !errors.Is(err, ErrUsage) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := (&AuthOptions{CA: filepath.Join(t.TempDir(), "none")}).tlsConfig(); err == nil {
		t.Error("a missing --ca file is accepted")
	}
}

// marBlobData selects the emulator's blob fetches.
var marBlobData = mar.Filter{Kind: mar.KindBlobData}

// keychainOf resolves registries from a map (anonymous otherwise).
type keychainOf map[string]authn.Authenticator

func (k keychainOf) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The OCI distribution-spec conformance suite (pinned in
// scripts/install-tools.sh), in pull mode, against airlock proxying the MAR
// emulator. The emulator is read-only, so the suite cannot push its own
// data: this version's read-only mode (OCI_API_PUSH=false) instead takes the
// content that exists, in OCI_RO_DATA_TAGS, OCI_RO_DATA_MANIFESTS,
// OCI_RO_DATA_BLOBS and OCI_RO_DATA_REFERRERS, all in OCI_REPO1 (the legacy
// OCI_ROOT_URL/OCI_NAMESPACE/OCI_TEST_PULL names are deprecated aliases of
// OCI_REGISTRY/OCI_REPO1/OCI_API_PULL). Two runs:
//
//   - aks: aks-managed-repository/oss/kubernetes/pause, the emulator's AKS
//     catalog (two multi-platform OCI indexes, their manifests and blobs,
//     a signature and an SBOM as referrers);
//   - seeded: aks-managed-repository/conformance/seeded, an OCI layout this
//     test writes and `airlock mar --from` serves, with the kinds of data the
//     suite generates when it can push (seed_test.go).
//
// Everything is cold when the run starts: tags/list through the rule lists
// the emulator's tags (with any held locally, SPEC §3), manifests, blobs and
// referrers go upstream during the run, and each blob must have been
// fetched upstream exactly once.
//
// Digest headers are not required (OCI_VERSION 1.1 defaults, not dev): in
// read-only mode this version never looks at the response it would check
// (it knows no manifest bytes, so it does not capture the response) and
// reports every manifest as missing Docker-Content-Digest; airlock sends it
// (containerd's HEAD resolution depends on it, TestContainerdPull).
//
// In read-only mode this suite also panics after printing its summary
// (ReportResultsYAML dereferences the test data of the blob-push tests it
// never ran), so the exit code is not the verdict: the printed result line
// and per-API lines are. results.yaml is then partial and junit.xml and
// report.html are not written; the printed report is kept as stdout.txt in
// .ci/out/conformance/pull-<run>.
func TestOCIConformancePull(t *testing.T) {
	t.Parallel()
	bin := needTool(t, "conformance")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 3*time.Minute)
	from := t.TempDir()
	seed := seedLayout(t, filepath.Join(from, "conformance", "seeded"))
	m := startMar(t, "", "127.0.0.1:0", "127.0.0.1:0", "--from", from)
	a := startAirlock(t, "", "127.0.0.1:0", m.url, ruleYAML)
	imgs := m.images(t, ctx)

	// The aks run's read-only data, from the emulator's catalog.
	aks := roData{name: "aks", repo: "oss/kubernetes/pause"}
	for _, tag := range []string{"3.9", "3.10"} {
		img := mustImage(t, imgs, aks.repo+":"+tag)
		aks.tags = append(aks.tags, tag)
		aks.manifests = append(aks.manifests, img.Digest.String())
		aks.referrers = append(aks.referrers, img.Digest.String())
		for _, pm := range img.Platforms {
			aks.manifests = append(aks.manifests, pm.Digest.String())
			aks.blobs = append(aks.blobs, pm.Config.Digest.String())
			for _, l := range pm.Layers {
				aks.blobs = append(aks.blobs, l.Digest.String())
			}
		}
		for _, r := range marReferrers(t, ctx, m, aks.repo, img.Digest.String()) {
			aks.manifests = append(aks.manifests, r.Digest.String())
		}
	}
	seeded := roData{name: "seeded", repo: "conformance/seeded", tags: seed.tags, manifests: seed.manifests, blobs: seed.blobs, referrers: seed.referrers}
	runs := []roData{aks, seeded}
	results := make([]string, len(runs))
	t.Run("group", func(t *testing.T) {
		for i, rd := range runs {
			t.Run(rd.name, func(t *testing.T) {
				t.Parallel()
				results[i] = runConformancePull(t, ctx, bin, filepath.Join(root, ".ci", "out", "conformance", "pull-"+rd.name), a, rd)
			})
		}
	})

	st := m.stats(t, ctx)
	for _, rd := range runs {
		for _, d := range uniq(rd.blobs) {
			if n := st.Fetches(d); n != 1 {
				t.Errorf("%s: blob %s fetched upstream %d times, want 1", rd.repo, d, n)
			}
		}
	}
	// The suite does not check referrer contents in read-only mode: airlock
	// must list what the emulator lists (the seeded index's referrer is an
	// index with an artifactType).
	refs := 0
	for _, rd := range runs {
		for _, subj := range rd.referrers {
			want := map[string]string{}
			for _, r := range marReferrers(t, ctx, m, rd.repo, subj) {
				want[r.Digest.String()] = r.ArtifactType
			}
			body, err := nsHTTP(ctx, "", http.MethodGet, a.url+"/v2/"+mirrorRepo+"/"+rd.repo+"/referrers/"+subj)
			var idx v1.IndexManifest
			if err == nil {
				err = json.Unmarshal(body, &idx)
			}
			got := map[string]string{}
			for _, r := range idx.Manifests {
				got[r.Digest.String()] = r.ArtifactType
			}
			if err != nil || !maps.Equal(got, want) {
				t.Errorf("referrers of %s@%s through airlock: %v %v, the emulator has %v", rd.repo, subj, got, err, want)
			}
			refs += len(got)
		}
	}
	if refs < 5 {
		t.Errorf("only %d referrers found: the check proves little", refs)
	}
	for i, rd := range runs {
		t.Logf("OCI conformance, pull mode, %s/%s (%d tags, %d manifests, %d blobs, %d subjects): %s",
			mirrorRepo, rd.repo, len(rd.tags), len(uniq(rd.manifests)), len(uniq(rd.blobs)), len(rd.referrers), results[i])
	}
}

// roData is what exists upstream in one repository, for read-only mode.
type roData struct {
	name, repo                        string
	tags, manifests, blobs, referrers []string
}

// The APIs a pull-through cache must pass in read-only mode.
var pullAPIs = []string{"Ping", "Tag listing", "Blob get", "Blob head", "Manifest get by digest",
	"Manifest get by tag", "Manifest head by digest", "Manifest head by tag", "Referrers"}

func runConformancePull(t *testing.T, ctx context.Context, bin, out string, a *airlockServer, rd roData) string {
	repo := mirrorRepo + "/" + rd.repo
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin)
	cmd.Dir = out
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+a.host, "OCI_TLS=disabled", "OCI_VERSION=1.1", "OCI_LOG=warn", "OCI_RESULTS_DIR="+out,
		"OCI_REPO1="+repo, "OCI_REPO2="+repo,
		"OCI_API_PUSH=false", "OCI_API_BLOBS_DELETE=false", "OCI_API_MANIFESTS_DELETE=false", "OCI_API_TAGS_DELETE=false",
		"OCI_RO_DATA_TAGS="+strings.Join(rd.tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(uniq(rd.manifests), " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(uniq(rd.blobs), " "),
		"OCI_RO_DATA_REFERRERS="+strings.Join(rd.referrers, " "))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	os.WriteFile(filepath.Join(out, "stdout.txt"), stdout.Bytes(), 0o644)
	os.WriteFile(filepath.Join(out, "stderr.txt"), stderr.Bytes(), 0o644)
	if cctx.Err() != nil {
		t.Fatalf("conformance suite did not finish: %v", cctx.Err())
	}
	r := parseConformance(stdout.String())
	t.Logf("%s: %s (exit: %v%s); report in %s", repo, r.line, runErr, panicNote(stderr.String()), out)
	if r.result != "Pass" || r.n["FAIL"] != 0 || r.n["Error"] != 0 || r.n["Skip"] != 0 || r.n["Pass"] == 0 {
		t.Errorf("conformance failed: %s\n%s\n%s", r.line, tail(stdout.String(), 6000), tail(stderr.String(), 3000))
	}
	for _, api := range pullAPIs {
		if r.apis[api] != "Pass" {
			t.Errorf("conformance API %q: %q, want Pass", api, r.apis[api])
		}
	}
	if r.data["Read Only Inputs"] != "Pass" {
		t.Errorf("conformance data %q: %q, want Pass", "Read Only Inputs", r.data["Read Only Inputs"])
	}
	return r.line
}

func panicNote(stderr string) string {
	if strings.Contains(stderr, "panic:") {
		return ", a panic after the summary: known in read-only mode"
	}
	return ""
}

type conformanceResult struct {
	result     string
	n          map[string]int
	apis, data map[string]string
	line       string
}

var (
	reResult  = regexp.MustCompile(`OCI Conformance Result: (\w+)`)
	reCount   = regexp.MustCompile(`(?m)^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)$`)
	reSection = regexp.MustCompile(`(?m)^(API|Data) conformance:\n((?:\s+.+\.+:\s+\w+\n?)+)`)
	reStatus  = regexp.MustCompile(`(?m)^\s+(.+?)\.+:\s+(\w+)$`)
)

// parseConformance reads the summary the suite prints.
func parseConformance(out string) conformanceResult {
	r := conformanceResult{n: map[string]int{}, apis: map[string]string{}, data: map[string]string{}}
	if m := reResult.FindStringSubmatch(out); m != nil {
		r.result = m[1]
	}
	for _, m := range reCount.FindAllStringSubmatch(out, -1) {
		r.n[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, sec := range reSection.FindAllStringSubmatch(out, -1) {
		dst := r.apis
		if sec[1] == "Data" {
			dst = r.data
		}
		for _, m := range reStatus.FindAllStringSubmatch(sec[2], -1) {
			dst[m[1]] = m[2]
		}
	}
	r.line = fmt.Sprintf("OCI Conformance Result: %s: pass %d, fail %d, error %d, skip %d, disabled %d, total %d",
		r.result, r.n["Pass"], r.n["FAIL"], r.n["Error"], r.n["Skip"], r.n["Disabled"], r.n["Total"])
	return r
}

func uniq(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

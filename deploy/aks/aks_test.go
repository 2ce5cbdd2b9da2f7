package aks_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/deploy/aks"
)

func TestLookupForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, minor   string
		unsupported bool // else a malformed version
	}{
		{in: "1.31", minor: "1.31"},
		{in: "1.31.3", minor: "1.31"},
		{in: "v1.31.3", minor: "1.31"},
		{in: "1.31.9", minor: "1.31"}, // one set per minor, whatever the patch
		{in: "1.30.0", minor: "1.30"},
		{in: "1.32", minor: "1.32"},
		{in: "1.29.9", unsupported: true},
		{in: "1.33", unsupported: true},
		{in: "2.30", unsupported: true},
		{in: "latest"},
		{in: ""},
		{in: "1"},
		{in: "1.31.3.4"},
		{in: "1.31-rc"},
	} {
		r, err := aks.Lookup(tc.in)
		switch {
		case tc.minor != "":
			if err != nil || r.Minor != tc.minor {
				t.Errorf("Lookup(%q) = %q, %v; want %s", tc.in, r.Minor, err, tc.minor)
			}
		case tc.unsupported:
			if !errors.Is(err, aks.ErrUnsupported) || !strings.Contains(err.Error(), "supported: 1.30, 1.31, 1.32") {
				t.Errorf("Lookup(%q): %v, want ErrUnsupported naming the supported versions", tc.in, err)
			}
		default:
			if err == nil || errors.Is(err, aks.ErrUnsupported) || !strings.Contains(err.Error(), "must look like") {
				t.Errorf("Lookup(%q): %v, want a malformed-version error", tc.in, err)
			}
		}
	}
}

// Every supported version's set is what a node pulls: the nine images and
// artifacts of SPEC §5, versioned by its release.
func TestBootstrapSets(t *testing.T) {
	t.Parallel()
	vs := aks.Versions()
	if !slices.Equal(vs, []string{"1.30", "1.31", "1.32"}) {
		t.Fatalf("versions %v", vs)
	}
	for _, v := range vs {
		refs, err := aks.Bootstrap(v)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := aks.Lookup(v)
		want := map[string]string{
			aks.RepoPause:              "3.10",
			aks.RepoKubeProxy:          r.Kubernetes,
			aks.RepoCoreDNS:            r.CoreDNS,
			aks.RepoCloudNodeManager:   r.CloudProvider,
			aks.RepoCNS:                r.CNS,
			aks.RepoCilium:             r.Cilium,
			aks.RepoKubeletPackage:     r.Kubernetes,
			aks.RepoKubernetesNode:     r.Kubernetes + "-linux-amd64",
			aks.RepoCredentialProvider: r.CloudProvider + "-linux-amd64",
		}
		if len(refs) != len(want) {
			t.Fatalf("%s: %d references: %v", v, len(refs), refs)
		}
		for _, ref := range refs {
			if tag, ok := want[ref.Repo]; !ok || tag != ref.Tag {
				t.Errorf("%s: %s, want tag %q", v, ref, tag)
			}
			delete(want, ref.Repo)
		}
		if !strings.HasPrefix(r.Kubernetes, "v"+v+".") {
			t.Errorf("%s: Kubernetes %s", v, r.Kubernetes)
		}
		for _, tag := range []string{r.CloudProvider, r.CoreDNS, r.CNS, r.Cilium} {
			if !strings.HasPrefix(tag, "v") {
				t.Errorf("%s: tag %q", v, tag)
			}
		}
	}
}

func TestRefForms(t *testing.T) {
	t.Parallel()
	r := aks.Ref{Repo: aks.RepoPause, Tag: aks.PauseTag}
	if r.String() != "oss/kubernetes/pause:3.10" || r.Image() != "mcr.microsoft.com/oss/kubernetes/pause:3.10" {
		t.Fatalf("%s %s", r, r.Image())
	}
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization the layouts use;
// decoded strictly, so a field this test does not know fails it.
type kustomization struct {
	APIVersion         string        `json:"apiVersion"`
	Kind               string        `json:"kind"`
	Namespace          string        `json:"namespace"`
	Resources          []string      `json:"resources"`
	Patches            []patchRef    `json:"patches"`
	ConfigMapGenerator []cmGenerator `json:"configMapGenerator"`
}

// patchRef is a patch kept in a file of the kustomization.
type patchRef struct {
	Path string `json:"path"`
}

// cmGenerator makes a ConfigMap from files; kustomize suffixes its name
// with a hash of the contents and rewrites every reference to it.
type cmGenerator struct {
	Name     string   `json:"name"`
	Behavior string   `json:"behavior"`
	Files    []string `json:"files"`
	Options  struct {
		Labels map[string]string `json:"labels"`
	} `json:"options"`
}

// manifests are the objects of a layout's own resource files, decoded
// strictly.
type manifests struct {
	configMaps      []*corev1.ConfigMap
	statefulSets    []*appsv1.StatefulSet
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	monitors        []*monitoringv1.ServiceMonitor
	namespaces      []*corev1.Namespace
}

// layout is one kustomization directory under deploy/k8s.
type layout struct {
	dir string
	k   kustomization
	manifests
	bases   []string          // resources that are directories (other kustomizations)
	patches map[string][]byte // patch files by path
	// generated holds each configMapGenerator's files: name -> key -> text.
	generated map[string]map[string]string
}

// loadLayout decodes dir's kustomization.yaml and every object of the
// resource files it lists with the Kubernetes API types, refusing unknown
// fields: a typo fails. Every file it names must exist, and every YAML
// file of dir must be used by it.
func loadLayout(t *testing.T, dir string) *layout {
	t.Helper()
	l := &layout{dir: dir, patches: map[string][]byte{}, generated: map[string]map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &l.k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if l.k.APIVersion != "kustomize.config.k8s.io/v1beta1" || l.k.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: apiVersion %q kind %q", dir, l.k.APIVersion, l.k.Kind)
	}
	used := map[string]bool{"kustomization.yaml": true}
	for _, r := range l.k.Resources {
		fi, err := os.Stat(filepath.Join(dir, r))
		switch {
		case err != nil:
			t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
		case fi.IsDir():
			l.bases = append(l.bases, r)
		default:
			used[r] = true
			l.decodeFile(t, r)
		}
	}
	for _, p := range l.k.Patches {
		used[p.Path] = true
		if l.patches[p.Path], err = os.ReadFile(filepath.Join(dir, p.Path)); err != nil {
			t.Errorf("%s/kustomization.yaml patches with %s: %v", dir, p.Path, err)
		}
	}
	for _, g := range l.k.ConfigMapGenerator {
		l.generated[g.Name] = map[string]string{}
		for _, f := range g.Files {
			key, file, ok := strings.Cut(f, "=")
			if !ok {
				file = key
			}
			used[file] = true
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Errorf("%s/kustomization.yaml generates %s from %s: %v", dir, g.Name, file, err)
			}
			l.generated[g.Name][filepath.Base(key)] = string(b)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if !used[filepath.Base(f)] {
			t.Errorf("%s is not used by %s/kustomization.yaml", filepath.Base(f), dir)
		}
	}
	return l
}

// decodeFile decodes every document of one resource file.
func (l *layout) decodeFile(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	m := &l.manifests
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		where := fmt.Sprintf("%s/%s document %d", l.dir, name, i+1)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			obj = appendNew(&m.configMaps)
		case "v1 Service":
			obj = appendNew(&m.services)
		case "v1 ServiceAccount":
			obj = appendNew(&m.serviceAccounts)
		case "v1 Namespace":
			obj = appendNew(&m.namespaces)
		case "apps/v1 StatefulSet":
			obj = appendNew(&m.statefulSets)
		case "policy/v1 PodDisruptionBudget":
			obj = appendNew(&m.pdbs)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = appendNew(&m.monitors)
		default:
			t.Fatalf("%s: unexpected apiVersion %q kind %q", where, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
}

// appendNew appends a new object to list and returns it.
func appendNew[T any](list *[]*T) *T {
	o := new(T)
	*list = append(*list, o)
	return o
}

// checkMonitor checks that the ServiceMonitor scrapes /metrics of exactly
// one of services (so each pod once), on a port that Service has.
func checkMonitor(t *testing.T, sm *monitoringv1.ServiceMonitor, services []*corev1.Service) {
	t.Helper()
	msel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	scraped := 0
	for _, s := range services {
		if msel.Matches(labels.Set(s.Labels)) {
			scraped++
			for _, ep := range sm.Spec.Endpoints {
				if ep.Path != "/metrics" || !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("ServiceMonitor endpoint %s%s does not exist on service %s", ep.Port, ep.Path, s.Name)
				}
			}
		}
	}
	if scraped != 1 {
		t.Errorf("the ServiceMonitor selects %d services, want 1 (each pod scraped once)", scraped)
	}
}

// checkProbes checks the container's probes: liveness (and startup, if
// any) on /healthz, readiness on /readyz, all on the port named http.
func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"}
	if c.StartupProbe != nil {
		probes["startup"] = c.StartupProbe
	}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != wantPath[name] || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe must GET %s on port http: %+v", name, wantPath[name], p)
		}
	}
}

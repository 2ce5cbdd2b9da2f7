package main

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const k8sDir = "../../deploy/k8s"

// kustomization is the part of kustomize's Kustomization the manifests use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// manifests are the objects of deploy/k8s, decoded strictly.
type manifests struct {
	configMaps   []*corev1.ConfigMap
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	monitors     []*monitoringv1.ServiceMonitor
	namespaces   []*corev1.Namespace
}

// decodeManifests decodes every document of every file of deploy/k8s
// with the Kubernetes API types, refusing unknown fields: a typo fails.
func decodeManifests(t *testing.T) (manifests, kustomization) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var m manifests
	var k kustomization
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				m.configMaps, obj = append(m.configMaps, o), o
			case "v1 Service":
				o := &corev1.Service{}
				m.services, obj = append(m.services, o), o
			case "v1 Namespace":
				o := &corev1.Namespace{}
				m.namespaces, obj = append(m.namespaces, o), o
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				m.statefulSets, obj = append(m.statefulSets, o), o
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, o), o
			case "monitoring.coreos.com/v1 ServiceMonitor":
				o := &monitoringv1.ServiceMonitor{}
				m.monitors, obj = append(m.monitors, o), o
			case "kustomize.config.k8s.io/v1beta1 Kustomization":
				obj = &k
			default:
				t.Fatalf("%s: unexpected apiVersion %q kind %q", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m, k
}

// The manifests decode strictly and agree with each other and with the
// configuration they ship: ports, paths, labels, probes, volumes.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m, k := decodeManifests(t)
	var listed []string
	for _, f := range k.Resources {
		if _, err := os.Stat(filepath.Join(k8sDir, f)); err != nil {
			t.Errorf("kustomization lists %s: %v", f, err)
		}
		listed = append(listed, f)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(listed, b) {
			t.Errorf("%s is not in kustomization.yaml", b)
		}
	}
	if len(m.configMaps) != 1 || len(m.statefulSets) != 1 || len(m.pdbs) != 1 || len(m.monitors) != 1 || len(m.services) != 2 {
		t.Fatalf("want 1 ConfigMap, StatefulSet, PodDisruptionBudget, ServiceMonitor and 2 Services, got %d %d %d %d %d",
			len(m.configMaps), len(m.statefulSets), len(m.pdbs), len(m.monitors), len(m.services))
	}
	cm, ss, pdb, sm := m.configMaps[0], m.statefulSets[0], m.pdbs[0], m.monitors[0]

	cfg, err := config.Parse([]byte(cm.Data["airlock.yaml"]))
	if err != nil {
		t.Fatalf("the ConfigMap's airlock.yaml: %v", err)
	}
	_, port, _ := strings.Cut(cfg.Listen, ":")

	pod := ss.Spec.Template
	podLabels := labels.Set(pod.Labels)
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("StatefulSet selector does not match its pods: %v", err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("containers: %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || fmt.Sprint(c.Ports[0].ContainerPort) != port {
		t.Errorf("container port %+v does not match listen %s", c.Ports, cfg.Listen)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != wantPath[name] || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe must GET %s on port http: %+v", name, wantPath[name], p)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("container needs cpu and memory requests")
	}
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("the pod must run as the image's non-root user 65532")
	}
	if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) {
		t.Errorf("args %v lack --config", c.Args)
	} else {
		mounts := map[string]string{}
		for _, vm := range c.VolumeMounts {
			mounts[vm.Name] = vm.MountPath
		}
		if mounts["config"] != path.Dir(c.Args[i+1]) {
			t.Errorf("--config %s is not in the config volume (mounted at %s)", c.Args[i+1], mounts["config"])
		}
		if mounts["data"] != cfg.Storage.Dir {
			t.Errorf("storage.dir %s is not the data volume (mounted at %s)", cfg.Storage.Dir, mounts["data"])
		}
	}
	var cmVolume bool
	for _, v := range pod.Spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			cmVolume = true
		}
	}
	if !cmVolume {
		t.Error("the config volume must be the ConfigMap")
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Fatal("want one volume claim template named data")
	}
	pvc := ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	if cfg.Storage.MaxBytes <= 0 || resource.NewQuantity(int64(cfg.Storage.MaxBytes), resource.BinarySI).Cmp(pvc) >= 0 {
		t.Errorf("storage.maxBytes %d must be set and below the volume's %s", cfg.Storage.MaxBytes, pvc.String())
	}

	for _, s := range m.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("service %s does not select the pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() != "http" {
				t.Errorf("service %s targets port %s", s.Name, p.TargetPort.String())
			}
		}
	}
	if ss.Spec.ServiceName == "" || !slices.ContainsFunc(m.services, func(s *corev1.Service) bool {
		return s.Name == ss.Spec.ServiceName && s.Spec.ClusterIP == corev1.ClusterIPNone
	}) {
		t.Errorf("serviceName %q must be a headless Service", ss.Spec.ServiceName)
	}
	if ps, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !ps.Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget does not select the pods: %v", err)
	}
	if pdb.Spec.MinAvailable == nil || ss.Spec.Replicas == nil || int32(pdb.Spec.MinAvailable.IntValue()) >= *ss.Spec.Replicas {
		t.Error("minAvailable must leave a replica free to drain")
	}
	msel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	scraped := 0
	for _, s := range m.services {
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

// The shipped configuration files load.
func TestShippedConfigs(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"../../deploy/docker/airlock.yaml", "../../examples/airlock.yaml"} {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

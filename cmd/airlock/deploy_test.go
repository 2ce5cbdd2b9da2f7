package main

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const k8sDir = "../../deploy/k8s"

// The manifests decode strictly and agree with each other and with the
// configuration they ship: ports, paths, labels, probes, volumes.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadLayout(t, k8sDir).manifests
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
	checkProbes(t, c)
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
	checkMonitor(t, sm, m.services)
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

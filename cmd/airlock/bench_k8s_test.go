package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// benchManifests are the objects of `airlock bench --emit-k8s`, decoded
// strictly with the Kubernetes API types.
type benchManifests struct {
	configMaps []*corev1.ConfigMap
	services   []*corev1.Service
	jobs       map[string]*batchv1.Job
}

func decodeBenchManifests(t *testing.T, out string) benchManifests {
	t.Helper()
	m := benchManifests{jobs: map[string]*batchv1.Job{}}
	var jobs []*batchv1.Job
	docs := strings.Split(out, "\n---\n")
	if !strings.HasPrefix(docs[0], "# ") || strings.Contains(docs[0], "\n---") {
		t.Fatalf("no comment header:\n%s", docs[0])
	}
	for i, doc := range docs[1:] {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		case "batch/v1 Job":
			o := &batchv1.Job{}
			jobs, obj = append(jobs, o), o
		default:
			t.Fatalf("document %d: unexpected %s %s", i+1, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d: %v\n%s", i+1, err, doc)
		}
	}
	for _, j := range jobs {
		m.jobs[j.Name] = j
	}
	return m
}

// --emit-k8s prints an Indexed Job of K agents and the coordinator's Job
// and Service; they decode strictly, the agents reach the coordinator
// through the Service, the image list and CA ride in a ConfigMap, and the
// password comes from a Secret, never the manifests.
func TestBenchEmitK8s(t *testing.T) {
	t.Setenv("BENCH_K8S_PW", "not-in-the-manifests")
	dir := t.TempDir()
	list, ca := filepath.Join(dir, "images.txt"), filepath.Join(dir, "ca.pem")
	os.WriteFile(list, []byte("mcr.microsoft.com/oss/kubernetes/pause:3.10\n"), 0o644)
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"bench", "--registry", "https://myacr.azurecr.io", "--prefix", "aks-managed-repository/",
		"--images", list, "--ca", ca, "--username", "id", "--password-env", "BENCH_K8S_PW", "--acr-exchange",
		"--agents", "4", "--nodes", "300", "--arrival", "rolling:10", "--listen", ":7070", "--emit-k8s", "--k8s-image", "registry.example/airlock:v1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Contains(out, "not-in-the-manifests") {
		t.Fatal("the password is in the manifests")
	}
	m := decodeBenchManifests(t, out)
	agents, coord := m.jobs["airlock-bench-agents"], m.jobs["airlock-bench-coordinator"]
	if len(m.services) != 1 || len(m.configMaps) != 1 || agents == nil || coord == nil || len(m.jobs) != 2 {
		t.Fatalf("want a Service, a ConfigMap and two Jobs: %d %d %v", len(m.services), len(m.configMaps), m.jobs)
	}
	svc, cm := m.services[0], m.configMaps[0]
	if agents.Spec.CompletionMode == nil || *agents.Spec.CompletionMode != batchv1.IndexedCompletion ||
		*agents.Spec.Completions != 4 || *agents.Spec.Parallelism != 4 || *coord.Spec.Completions != 1 {
		t.Fatalf("agents %+v, coordinator %+v", agents.Spec, coord.Spec)
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if !sel.Matches(labels.Set(coord.Spec.Template.Labels)) || sel.Matches(labels.Set(agents.Spec.Template.Labels)) {
		t.Fatalf("the Service selects %v, coordinator pods have %v", svc.Spec.Selector, coord.Spec.Template.Labels)
	}
	cc, ac := coord.Spec.Template.Spec.Containers[0], agents.Spec.Template.Spec.Containers[0]
	port := svc.Spec.Ports[0]
	if port.Port != 7070 || port.TargetPort.StrVal != cc.Ports[0].Name || cc.Ports[0].ContainerPort != 7070 {
		t.Fatalf("service port %+v, container ports %+v", port, cc.Ports)
	}
	wantCoord := []string{"bench", "--agents", "4", "--listen", ":7070", "--out", "/results", "--registry=https://myacr.azurecr.io",
		"--images=/etc/airlock-bench/images.txt", "--ca=/etc/airlock-bench/ca.crt", "--arrival=rolling:10", "--nodes=300", "--acr-exchange=true"}
	for _, w := range wantCoord {
		if !slices.Contains(cc.Args, w) {
			t.Errorf("coordinator args %q lack %q", cc.Args, w)
		}
	}
	coordURL := fmt.Sprintf("http://%s:%d", svc.Name, port.Port)
	if ac.Args[0] != "bench" || ac.Args[1] != "agent" || !slices.Contains(ac.Args, coordURL) || !slices.Contains(ac.Args, "--ca=/etc/airlock-bench/ca.crt") ||
		!slices.Contains(ac.Args, "--password-env=BENCH_K8S_PW") || slices.Contains(ac.Args, "--nodes=300") {
		t.Errorf("agent args %q", ac.Args)
	}
	if cm.Data["images.txt"] == "" || !strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE") {
		t.Errorf("ConfigMap %v", cm.Data)
	}
	for _, c := range []corev1.Container{cc, ac} {
		if c.Image != "registry.example/airlock:v1" || len(c.Env) != 1 || c.Env[0].Name != "BENCH_K8S_PW" ||
			c.Env[0].ValueFrom.SecretKeyRef.Name != "airlock-bench-credentials" || !slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool {
			return v.MountPath == "/etc/airlock-bench"
		}) {
			t.Errorf("container %s: image %s, env %+v, mounts %+v", c.Name, c.Image, c.Env, c.VolumeMounts)
		}
	}
	if a := agents.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Error("agents are not spread over the cluster's nodes")
	}
	if !strings.Contains(out, "kubectl create secret generic airlock-bench-credentials --from-literal=BENCH_K8S_PW=") {
		t.Errorf("the header does not say how to make the Secret:\n%s", strings.SplitN(out, "---", 2)[0])
	}
}

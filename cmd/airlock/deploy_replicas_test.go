package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/storage/azure"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	replicasDir   = "../../deploy/k8s/replicas"
	replicasWIDir = "../../deploy/k8s/replicas-workload-identity"
	// testPodIP stands for the address the downward API gives a pod.
	testPodIP = "10.244.1.7"
)

// replicaConfig is airlock.yaml of the replicated layout, with issue 13's
// keys at hand.
type replicaConfig struct {
	*config.Config
	driver  string
	azure   azure.Config
	cluster cluster.Config
}

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// parseReplicaConfig expands the ${NAME} of text's values from env, as
// config.Load does from the process's environment (a name env lacks is an
// error), and decodes and validates the result as serve does.
func parseReplicaConfig(t *testing.T, text string, env map[string]string) replicaConfig {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		t.Fatalf("airlock.yaml: %v", err)
	}
	var expand func(n *yaml.Node)
	expand = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			n.Value = envRefRE.ReplaceAllStringFunc(n.Value, func(ref string) string {
				name := envRefRE.FindStringSubmatch(ref)[1]
				v, ok := env[name]
				if !ok {
					t.Errorf("airlock.yaml line %d names ${%s}, which the container does not set", n.Line, name)
				}
				return v
			})
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				expand(n.Content[i])
			}
		default:
			for _, c := range n.Content {
				expand(c)
			}
		}
	}
	expand(&root)
	b, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatalf("airlock.yaml: %v", err)
	}
	if cfg.Storage.Azure == nil {
		t.Fatal("airlock.yaml: no storage.azure")
	}
	return replicaConfig{Config: cfg, driver: cfg.Storage.Driver, azure: *cfg.Storage.Azure, cluster: cfg.Cluster}
}

// podEnv is container c's environment as the kubelet sets it in namespace
// ns for a pod at testPodIP; a variable from a Secret holds a placeholder
// and its reference is returned by name.
func podEnv(t *testing.T, c corev1.Container, ns string) (map[string]string, map[string]*corev1.SecretKeySelector) {
	t.Helper()
	env, secrets := map[string]string{}, map[string]*corev1.SecretKeySelector{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = testPodIP
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = ns
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			secrets[e.Name] = e.ValueFrom.SecretKeyRef
		default:
			t.Errorf("variable %s: this test knows no such source: %+v", e.Name, e.ValueFrom)
		}
	}
	return env, secrets
}

// createSecretRE is how kustomization.yaml says to make the key's Secret.
var createSecretRE = regexp.MustCompile(`kubectl -n (\S+) create secret generic (\S+) --from-literal=([A-Za-z0-9._-]+)=`)

// replicaPod is what the replicated layout's pod runs.
type replicaPod struct {
	ss      *appsv1.StatefulSet
	c       corev1.Container
	env     map[string]string
	secrets map[string]*corev1.SecretKeySelector
	cfgGen  string // the configMapGenerator of airlock.yaml
	cfgKey  string // its file
	cfg     replicaConfig
	port    string // the container's http port, the listen port
}

// loadReplicaPod decodes the layout's StatefulSet and the configuration
// its pod loads, and checks that they agree: the --config file is the
// generated ConfigMap's, mounted where --config says; listen is the
// container's http port.
func loadReplicaPod(t *testing.T, l *layout) replicaPod {
	t.Helper()
	if len(l.statefulSets) != 1 || len(l.statefulSets[0].Spec.Template.Spec.Containers) != 1 {
		t.Fatal("want one StatefulSet of one container")
	}
	r := replicaPod{ss: l.statefulSets[0], c: l.statefulSets[0].Spec.Template.Spec.Containers[0]}
	r.env, r.secrets = podEnv(t, r.c, l.k.Namespace)
	i := slices.Index(r.c.Args, "--config")
	if i < 0 || i+1 >= len(r.c.Args) {
		t.Fatalf("args %v lack --config", r.c.Args)
	}
	file := r.c.Args[i+1]
	mounts := map[string]string{}
	for _, vm := range r.c.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	if mounts["config"] != path.Dir(file) {
		t.Errorf("--config %s is not in the config volume (mounted at %s)", file, mounts["config"])
	}
	for _, v := range r.ss.Spec.Template.Spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil {
			r.cfgGen, r.cfgKey = v.ConfigMap.Name, path.Base(file)
		}
	}
	text, ok := l.generated[r.cfgGen][r.cfgKey]
	if !ok {
		t.Fatalf("the config volume is ConfigMap %q key %q, which no configMapGenerator makes", r.cfgGen, r.cfgKey)
	}
	r.cfg = parseReplicaConfig(t, text, r.env)
	_, r.port, _ = net.SplitHostPort(r.cfg.Listen)
	if len(r.c.Ports) != 1 || r.c.Ports[0].Name != "http" || fmt.Sprint(r.c.Ports[0].ContainerPort) != r.port {
		t.Errorf("container port %+v does not match listen %s", r.c.Ports, r.cfg.Listen)
	}
	return r
}

// The replicated layout decodes strictly and agrees with itself and with
// the configuration of issue 13 it ships: peers found through the headless
// Service of its own namespace, this replica's address from the downward
// API, the account key from the Secret the instructions make, a bounded
// spool and no volume claims, spread over zones, two always serving.
func TestKubernetesReplicas(t *testing.T) {
	t.Parallel()
	l := loadLayout(t, replicasDir)
	if len(l.services) != 2 || len(l.pdbs) != 1 || len(l.monitors) != 1 || len(l.namespaces) != 1 || len(l.configMaps)+len(l.bases) != 0 {
		t.Fatalf("want 2 Services, a PodDisruptionBudget, a ServiceMonitor, a Namespace and nothing else; got %d %d %d %d (+%d %d)",
			len(l.services), len(l.pdbs), len(l.monitors), len(l.namespaces), len(l.configMaps), len(l.bases))
	}
	ns := l.k.Namespace
	if ns == "" || l.namespaces[0].Name != ns {
		t.Errorf("namespace %q is not the Namespace the layout makes (%q)", ns, l.namespaces[0].Name)
	}
	r := loadReplicaPod(t, l)
	ss, pod, c, cfg := r.ss, r.ss.Spec.Template, r.c, r.cfg
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("want 3 replicas, got %v", ss.Spec.Replicas)
	}
	podLabels := labels.Set(pod.Labels)
	if sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		t.Fatalf("StatefulSet selector does not match its pods: %v", err)
	}

	// Storage: the account's container; locally only a bounded spool.
	if cfg.driver != "azure" {
		t.Errorf("storage.driver = %q, want azure", cfg.driver)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 0 {
		t.Error("the blobs are in the storage account: a replica needs no volume claim")
	}
	spool := ""
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == cfg.Storage.Dir {
			spool = vm.Name
		}
	}
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == spool && (v.Ephemeral != nil || v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.Sign() > 0)
	}) {
		t.Errorf("storage.dir %s must be a bounded emptyDir or an ephemeral volume (mount %q)", cfg.Storage.Dir, spool)
	}

	// The key: accountKeyEnv is a variable from the Secret that
	// kustomization.yaml says how to create.
	ref := r.secrets[cfg.azure.AccountKeyEnv]
	if cfg.azure.AccountKeyEnv == "" || ref == nil {
		t.Fatalf("storage.azure.accountKeyEnv %q must name a container variable from a Secret", cfg.azure.AccountKeyEnv)
	}
	if ref.Optional != nil && *ref.Optional {
		t.Error("the key's Secret must not be optional: without it a replica cannot start")
	}
	kb, err := os.ReadFile(filepath.Join(replicasDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if m := createSecretRE.FindSubmatch(kb); m == nil {
		t.Error("kustomization.yaml does not say how to create the key's Secret (kubectl -n NS create secret generic NAME --from-literal=KEY=...)")
	} else if string(m[1]) != ns || string(m[2]) != ref.Name || string(m[3]) != ref.Key {
		t.Errorf("kustomization.yaml creates secret %s/%s key %s; the container reads %s/%s key %s", m[1], m[2], m[3], ns, ref.Name, ref.Key)
	}

	// Peers: the headless Service of this namespace, on the pod's port;
	// self is the pod IP the DNS records hold.
	var headless, client *corev1.Service
	for _, s := range l.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("service %s does not select the pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() != "http" || fmt.Sprint(p.Port) != r.port {
				t.Errorf("service %s port %d targets %s, want %s on http", s.Name, p.Port, p.TargetPort.String(), r.port)
			}
		}
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = s
		} else {
			client = s
		}
	}
	if headless == nil || client == nil {
		t.Fatal("want a headless Service for the peers and a client Service")
	}
	if ss.Spec.ServiceName != headless.Name {
		t.Errorf("serviceName %q is not the headless Service %q", ss.Spec.ServiceName, headless.Name)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Error("the peers Service must list replicas before they are ready: each probes its peers itself")
	}
	if want := net.JoinHostPort(headless.Name+"."+ns+".svc.cluster.local", r.port); cfg.cluster.PeersDNS != want {
		t.Errorf("cluster.peersDNS = %q, want %q (the headless Service)", cfg.cluster.PeersDNS, want)
	}
	if want := net.JoinHostPort(testPodIP, r.port); cfg.cluster.Self != want {
		t.Errorf("cluster.self = %q, want the pod IP and port, %q", cfg.cluster.Self, want)
	}
	single := loadLayout(t, k8sDir)
	if !slices.ContainsFunc(single.services, func(s *corev1.Service) bool {
		return s.Name == client.Name && single.k.Namespace == ns && s.Spec.Ports[0].Port == client.Spec.Ports[0].Port
	}) {
		t.Errorf("client Service %s/%s is not where deploy/k8s's is: nodes would need another address", ns, client.Name)
	}

	// Pods: probes, resources, non-root read-only, spread over zones and
	// nodes; two always serving.
	checkProbes(t, c)
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("container needs cpu and memory requests and a memory limit")
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("the pod must run as the image's non-root user 65532")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Error("the container must have a read-only root, no privilege escalation and no capabilities")
	}
	if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("airlock does not call the Kubernetes API: mount no token")
	}
	spread := map[string]corev1.TopologySpreadConstraint{}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err != nil || !s.Matches(podLabels) {
			t.Errorf("spread over %s does not count the replicas: %v", tsc.TopologyKey, err)
		}
		spread[tsc.TopologyKey] = tsc
	}
	for _, key := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
		if tsc, ok := spread[key]; !ok || tsc.MaxSkew != 1 {
			t.Errorf("want the replicas spread over %s with maxSkew 1", key)
		}
	}
	if spread["topology.kubernetes.io/zone"].WhenUnsatisfiable != corev1.DoNotSchedule {
		t.Error("spread over zones must be DoNotSchedule: ScheduleAnyway may put every replica in one zone")
	}
	pdb := l.pdbs[0]
	if ps, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !ps.Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget does not select the pods: %v", err)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("minAvailable = %v, want 2", pdb.Spec.MinAvailable)
	}
	checkMonitor(t, l.monitors[0], l.services)
}

// The workload identity layout is the replicated one with the pods run as
// a ServiceAccount federated with a managed identity, and no key at all:
// the configuration names none and the key's variable is gone.
func TestKubernetesReplicasWorkloadIdentity(t *testing.T) {
	t.Parallel()
	base, wi := loadLayout(t, replicasDir), loadLayout(t, replicasWIDir)
	if len(wi.bases) != 1 || filepath.Join(replicasWIDir, wi.bases[0]) != filepath.Clean(replicasDir) {
		t.Fatalf("resources %v: want the replicated layout and files of its own", wi.k.Resources)
	}
	if wi.k.Namespace != base.k.Namespace {
		t.Errorf("namespace %q: the ServiceAccount must be in the replicas' %q", wi.k.Namespace, base.k.Namespace)
	}
	if len(wi.serviceAccounts) != 1 || len(wi.statefulSets)+len(wi.services)+len(wi.configMaps)+len(wi.pdbs)+len(wi.monitors)+len(wi.namespaces) != 0 {
		t.Fatal("want one ServiceAccount and nothing else of its own")
	}
	sa := wi.serviceAccounts[0]
	if id := sa.Annotations["azure.workload.identity/client-id"]; !regexp.MustCompile(`^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("the ServiceAccount's azure.workload.identity/client-id %q is not a client ID", id)
	}
	r := loadReplicaPod(t, base)

	if len(wi.k.Patches) != 1 {
		t.Fatalf("want one patch, of the StatefulSet; got %d", len(wi.k.Patches))
	}
	patch, deleted := decodeStatefulSetPatch(t, wi.patches[wi.k.Patches[0].Path])
	if patch.Name != r.ss.Name {
		t.Errorf("the patch is of StatefulSet %q, the layout's is %q", patch.Name, r.ss.Name)
	}
	if patch.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Error("the pods need the label azure.workload.identity/use: \"true\" for the webhook to give them the identity")
	}
	if patch.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("the pods run as %q, not the ServiceAccount %q", patch.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
	key := r.cfg.azure.AccountKeyEnv
	if want := map[string][]string{r.c.Name: {key}}; fmt.Sprint(deleted) != fmt.Sprint(want) {
		t.Errorf("the patch deletes variables %v, want %v (the account key's)", deleted, want)
	}

	i := slices.IndexFunc(wi.k.ConfigMapGenerator, func(g cmGenerator) bool { return g.Name == r.cfgGen })
	if i < 0 || wi.k.ConfigMapGenerator[i].Behavior != "replace" {
		t.Fatalf("want the configuration %s replaced", r.cfgGen)
	}
	text, ok := wi.generated[r.cfgGen][r.cfgKey]
	if !ok {
		t.Fatalf("the replaced %s has no %s", r.cfgGen, r.cfgKey)
	}
	env := map[string]string{}
	for k, v := range r.env {
		if k != key {
			env[k] = v
		}
	}
	cfg := parseReplicaConfig(t, text, env)
	if cfg.azure.AccountKey+cfg.azure.AccountKeyEnv+cfg.azure.AccountKeyFile != "" {
		t.Error("with workload identity storage.azure names no key")
	}
	// The two configurations stay one: they differ by the key's line.
	baseText := base.generated[r.cfgGen][r.cfgKey]
	var dropped []string
	for _, line := range strings.Split(baseText, "\n") {
		if !slices.Contains(strings.Split(text, "\n"), line) {
			dropped = append(dropped, strings.TrimSpace(line))
		}
	}
	if len(dropped) != 1 || dropped[0] != "accountKeyEnv: "+key || len(strings.Split(text, "\n")) != len(strings.Split(baseText, "\n"))-1 {
		t.Errorf("%s/%s must be %s/%s without the key's line; they differ by %q", replicasWIDir, r.cfgKey, replicasDir, r.cfgKey, dropped)
	}
}

// decodeStatefulSetPatch decodes a strategic merge patch of a StatefulSet
// strictly, after taking out its deletions of container variables
// ({name: X, $patch: delete} under env), which it returns by container.
// Any other directive fails the test.
func decodeStatefulSetPatch(t *testing.T, b []byte) (*appsv1.StatefulSet, map[string][]string) {
	t.Helper()
	var m map[string]any
	if err := sigsyaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	deleted := map[string][]string{}
	spec, _ := m["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pspec, _ := tmpl["spec"].(map[string]any)
	containers, _ := pspec["containers"].([]any)
	for _, c := range containers {
		c, _ := c.(map[string]any)
		env, _ := c["env"].([]any)
		kept := env[:0]
		for _, e := range env {
			if e, _ := e.(map[string]any); e["$patch"] == "delete" && len(e) == 2 {
				deleted[fmt.Sprint(c["name"])] = append(deleted[fmt.Sprint(c["name"])], fmt.Sprint(e["name"]))
				continue
			}
			kept = append(kept, e)
		}
		if len(env) > 0 {
			c["env"] = kept
		}
	}
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(j), `"$`) {
		t.Fatalf("the patch has a directive this test does not know: %s", j)
	}
	var ss appsv1.StatefulSet
	if err := sigsyaml.UnmarshalStrict(j, &ss); err != nil {
		t.Fatalf("the patch: %v", err)
	}
	if ss.APIVersion != "apps/v1" || ss.Kind != "StatefulSet" {
		t.Fatalf("the patch is of %s %s", ss.APIVersion, ss.Kind)
	}
	return &ss, deleted
}

package bench

import (
	"fmt"
	"io"
	"maps"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// K8s names and paths of the emitted manifests.
const (
	K8sDefaultName  = "airlock-bench"
	K8sDefaultImage = "airlock:dev" // as deploy/k8s
	K8sFilesDir     = "/etc/airlock-bench"
	K8sResultsDir   = "/results"
	k8sLinger       = "15m"
	labelName       = "app.kubernetes.io/name"
	labelComponent  = "app.kubernetes.io/component"
)

// K8sOptions shape the manifests of a bench run on a Kubernetes cluster.
type K8sOptions struct {
	Name      string // object names and the coordinator Service; default airlock-bench
	Namespace string // "" = kubectl's current
	Image     string // the airlock image; default airlock:dev
	Agents    int    // completions of the agents' Indexed Job
	Port      int32  // the coordinator's port
	// CoordinatorArgs are the bench flags of the coordinator (registries,
	// images, arrival, nodes, runs, credentials...), without --agents,
	// --listen and --out, which the manifests set.
	CoordinatorArgs []string
	// AgentArgs are the agents' flags (credentials, TLS).
	AgentArgs []string
	// SecretEnv are variables (--password-env, --aad-token-env) taken from
	// the Secret <name>-credentials, key = the variable's name.
	SecretEnv []string
	// Files go in a ConfigMap mounted at K8sFilesDir (the image list, a CA).
	Files map[string]string
}

// EmitK8s writes the manifests of a distributed run: a ConfigMap (files),
// the coordinator's Service and Job, and the agents' Indexed Job, one
// pod per agent, spread over the cluster's nodes.
func EmitK8s(w io.Writer, o K8sOptions) error {
	if o.Agents < 1 {
		return fmt.Errorf("%w: --emit-k8s needs --agents K", ErrUsage)
	}
	if o.Name == "" {
		o.Name = K8sDefaultName
	}
	if o.Image == "" {
		o.Image = K8sDefaultImage
	}
	meta := func(name, component string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{labelName: o.Name, labelComponent: component}}
	}
	coordLabels := map[string]string{labelName: o.Name, labelComponent: "coordinator"}
	agentLabels := map[string]string{labelName: o.Name, labelComponent: "agent"}
	var objs []any
	if len(o.Files) > 0 {
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: meta(o.Name, "files"), Data: o.Files}
		objs = append(objs, cm)
	}
	objs = append(objs, &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o.Name, "coordinator"),
		Spec: corev1.ServiceSpec{Selector: coordLabels, Ports: []corev1.ServicePort{{
			Name: "coordinator", Port: o.Port, TargetPort: intstr.FromString("coordinator"), Protocol: corev1.ProtocolTCP,
		}}},
	})
	port := strconv.Itoa(int(o.Port))
	coordArgs := append([]string{"bench", "--agents", strconv.Itoa(o.Agents), "--listen", ":" + port,
		"--out", K8sResultsDir, "--linger", k8sLinger}, o.CoordinatorArgs...)
	coord := o.pod("coordinator", coordArgs, coordLabels)
	coord.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "coordinator", ContainerPort: o.Port, Protocol: corev1.ProtocolTCP}}
	coord.Spec.Containers[0].VolumeMounts = append(coord.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "results", MountPath: K8sResultsDir})
	coord.Spec.Volumes = append(coord.Spec.Volumes, corev1.Volume{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	one := int32(1)
	zero := int32(0)
	objs = append(objs, &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta(o.Name+"-coordinator", "coordinator"),
		Spec:       batchv1.JobSpec{Completions: &one, Parallelism: &one, BackoffLimit: &zero, Template: coord},
	})
	agentArgs := append([]string{"bench", "agent", "--coordinator", "http://" + o.Name + ":" + port}, o.AgentArgs...)
	agent := o.pod("agent", agentArgs, agentLabels)
	agent.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		// One agent per cluster node where possible: each plays its nodes'
		// share of the network, which one machine cannot.
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchLabels: agentLabels}, TopologyKey: "kubernetes.io/hostname",
		}}},
	}}
	k := int32(o.Agents)
	indexed := batchv1.IndexedCompletion
	objs = append(objs, &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta(o.Name+"-agents", "agent"),
		Spec: batchv1.JobSpec{Completions: &k, Parallelism: &k, CompletionMode: &indexed, BackoffLimit: &zero,
			Template: agent},
	})
	fmt.Fprintf(w, "# airlock bench on Kubernetes: %d agents (an Indexed Job, one pod per cluster node where possible) and a coordinator.\n", o.Agents)
	if len(o.SecretEnv) > 0 {
		fmt.Fprintf(w, "# First: kubectl create secret generic %s-credentials", o.Name)
		for _, e := range o.SecretEnv {
			fmt.Fprintf(w, " --from-literal=%s=...", e)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "# No --password-env: the pods pull with no credentials (the Docker config is not mounted).")
	}
	fmt.Fprintf(w, "# kubectl apply -f THIS_FILE; kubectl logs -f job/%s-coordinator  (the table)\n", o.Name)
	fmt.Fprintf(w, "# results.json and report.html: kubectl port-forward svc/%s %s, then GET /results.json, /report.html (for %s after the run)\n", o.Name, port, k8sLinger)
	for _, obj := range objs {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("emit-k8s: %w", err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

// pod is the pod template of one component.
func (o *K8sOptions) pod(component string, args []string, labels map[string]string) corev1.PodTemplateSpec {
	nonRoot, no, uid := true, false, int64(65532)
	c := corev1.Container{
		Name: component, Image: o.Image, ImagePullPolicy: corev1.PullIfNotPresent, Args: args,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi"),
		}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &nonRoot,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
	}
	for _, e := range o.SecretEnv {
		c.Env = append(c.Env, corev1.EnvVar{Name: e, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.Name + "-credentials"}, Key: e,
		}}})
	}
	vols := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if len(o.Files) > 0 {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "files", MountPath: K8sFilesDir, ReadOnly: true})
		vols = append(vols, corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.Name},
		}}})
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &nonRoot, RunAsUser: &uid, RunAsGroup: &uid},
			Containers:      []corev1.Container{c},
			Volumes:         vols,
		},
	}
}

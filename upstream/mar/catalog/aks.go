package catalog

import (
	"time"

	"github.com/airlock/airlock/deploy/aks"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
)

// sz is a size at each scale.
type sz struct{ small, full int64 }

var (
	linuxAmd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	linuxArm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	winAmd64   = v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2966"}
	linuxArchs = []v1.Platform{linuxAmd64, linuxArm64}
)

// platformDef is one manifest of an image.
type platformDef struct {
	platform   v1.Platform
	layers     []string // layer ids, base first
	titles     []string // artifacts: org.opencontainers.image.title per layer
	entrypoint []string
}

// referrerDef is an artifact attached to an image through its subject.
type referrerDef struct {
	artifactType string
	blobType     string // media type of its single layer
}

// imageDef is one tag.
type imageDef struct {
	repo, tag    string
	docker       bool   // Docker manifest list / schema2, else OCI
	index        bool   // index or manifest list, else a single manifest
	artifactType string // OCI artifact with the empty config
	created      time.Time
	platforms    []platformDef
	referrers    []referrerDef
}

// plan is a catalog before generation: layer specs and image definitions.
type plan struct {
	scale  Scale
	layers map[string]layerSpec
	images []imageDef
}

func (p *plan) pick(s sz) int64 {
	if p.scale == ScaleFull {
		return s.full
	}
	return s.small
}

// layer registers a layer spec once and returns its id.
func (p *plan) layer(id string, files ...fileSpec) string {
	if _, ok := p.layers[id]; !ok {
		p.layers[id] = layerSpec{id: id, files: files}
	}
	return id
}

func (p *plan) bin(path string, s sz) fileSpec {
	return fileSpec{path: path, size: p.pick(s), mode: 0o755}
}

func (p *plan) data(path string, s sz) fileSpec { return fileSpec{path: path, size: p.pick(s)} }

func txt(path, text string) fileSpec { return fileSpec{path: path, text: text} }

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // static table
	}
	return t
}

var triplets = map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}

// linuxBase is the distroless-style base layer shared by most images of an arch.
func (p *plan) linuxBase(arch string) string {
	lib := "usr/lib/" + triplets[arch] + "/"
	return p.layer("base/linux/"+arch,
		txt("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		txt("etc/group", "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"),
		txt("etc/os-release", "NAME=\"Microsoft Azure Linux\"\nVERSION=\"3.0\"\nID=azurelinux\nVERSION_ID=\"3.0\"\nPRETTY_NAME=\"Microsoft Azure Linux 3.0 (distroless)\"\n"),
		txt("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
		p.data("etc/ssl/certs/ca-certificates.crt", sz{4 * kib, 256 * kib}),
		p.bin(lib+"libc.so.6", sz{12 * kib, 2 * mib}),
		p.bin(lib+"libssl.so.3", sz{8 * kib, 1 * mib}),
		p.bin(lib+"libcrypto.so.3", sz{8 * kib, 768 * kib}),
		p.data("usr/share/zoneinfo/UTC", sz{1 * kib, 1 * kib}),
	)
}

// windowsBase is the nanoserver-style base layer shared by every Windows image.
func (p *plan) windowsBase() string {
	sys := "Files/Windows/System32/"
	return p.layer("base/windows/amd64",
		txt("Files/License.txt", "Emulated Windows base layer for the airlock MAR emulator.\r\n"),
		p.bin(sys+"ntdll.dll", sz{16 * kib, 8 * mib}),
		p.bin(sys+"kernel32.dll", sz{8 * kib, 4 * mib}),
		p.bin(sys+"KernelBase.dll", sz{8 * kib, 6 * mib}),
		p.bin(sys+"cmd.exe", sz{4 * kib, 2 * mib}),
		p.data("Hives/DefaultUser_Delta", sz{2 * kib, 256 * kib}),
		p.data("Hives/Sam_Delta", sz{2 * kib, 64 * kib}),
		p.data("Hives/Software_Delta", sz{8 * kib, 3 * mib}),
		p.data("Hives/System_Delta", sz{4 * kib, 1 * mib}),
	)
}

// linuxImage is base + extra layers for every linux arch.
func (p *plan) linuxPlatforms(entry string, layers func(arch string) []string) []platformDef {
	var out []platformDef
	for _, pl := range linuxArchs {
		out = append(out, platformDef{
			platform:   pl,
			layers:     append([]string{p.linuxBase(pl.Architecture)}, layers(pl.Architecture)...),
			entrypoint: []string{entry},
		})
	}
	return out
}

// aksPlan builds the "aks" catalog plan.
func aksPlan(scale Scale) *plan {
	p := &plan{scale: scale, layers: map[string]layerSpec{}}
	p.pause("3.9", "2024-03-01", nil)
	p.pause(aks.PauseTag, "2024-06-10", []referrerDef{
		{artifactType: ArtifactTypeNotarySignature, blobType: "application/jose+json"},
		{artifactType: ArtifactTypeSPDX, blobType: "application/spdx+json"},
	})
	for _, v := range []struct{ tag, date string }{{"v1.30.6", "2024-10-23"}, {"v1.30.7", "2024-11-20"}, {"v1.31.3", "2024-11-21"}, {"v1.32.0", "2025-01-15"}} {
		p.kubeProxy(v.tag, v.date)
	}
	seen := map[string]bool{}
	once := func(k string) bool { ok := !seen[k]; seen[k] = true; return ok }
	// Every image of every release's bootstrap set (deploy/aks), each
	// version once, dated by the first release that ships it.
	for _, r := range aks.Releases() {
		if once("coredns" + r.CoreDNS) {
			p.coredns(r.CoreDNS, r.Published)
		}
		if once("cnm" + r.CloudProvider) {
			p.cloudNodeManager(r.CloudProvider, r.Published)
			p.credentialProvider(r.CloudProvider, r.Published)
		}
		if once("cns" + r.CNS) {
			p.azureCNS(r.CNS, r.Published)
		}
		if once("cilium" + r.Cilium) {
			p.cilium(r.Cilium, r.Published)
		}
		p.kubelet(r.Kubernetes, r.Published)
	}
	return p
}

func (p *plan) pause(tag, date string, refs []referrerDef) {
	var plats []platformDef
	for _, pl := range linuxArchs {
		plats = append(plats, platformDef{platform: pl, entrypoint: []string{"/pause"},
			layers: []string{p.layer("pause/"+tag+"/linux/"+pl.Architecture, p.bin("pause", sz{8 * kib, 512 * kib}))}})
	}
	plats = append(plats, platformDef{platform: winAmd64, entrypoint: []string{"cmd", "/c", "pause.exe"},
		layers: []string{p.windowsBase(), p.layer("pause/"+tag+"/windows/amd64", p.bin("Files/pause.exe", sz{8 * kib, 1 * mib}))}})
	p.images = append(p.images, imageDef{repo: aks.RepoPause, tag: tag, index: true, created: day(date), platforms: plats, referrers: refs})
}

func (p *plan) kubeProxy(tag, date string) {
	plats := p.linuxPlatforms("/usr/local/bin/kube-proxy", func(arch string) []string {
		lib := "usr/lib/" + triplets[arch] + "/"
		return []string{
			p.layer("kube-proxy/iptables/"+arch,
				p.bin("usr/sbin/xtables-nft-multi", sz{24 * kib, 4 * mib}),
				p.bin(lib+"libnftnl.so.11", sz{16 * kib, 3 * mib}),
				p.bin(lib+"libmnl.so.0", sz{8 * kib, 2 * mib}),
				p.bin("usr/sbin/conntrack", sz{16 * kib, 3 * mib})),
			p.layer("kube-proxy/"+tag+"/"+arch, p.bin("usr/local/bin/kube-proxy", sz{64 * kib, 14 * mib})),
		}
	})
	p.images = append(p.images, imageDef{repo: aks.RepoKubeProxy, tag: tag, docker: true, index: true, created: day(date), platforms: plats})
}

func (p *plan) coredns(tag, date string) {
	plats := p.linuxPlatforms("/coredns", func(arch string) []string {
		return []string{p.layer("coredns/"+tag+"/"+arch, p.bin("coredns", sz{48 * kib, 12 * mib}))}
	})
	p.images = append(p.images, imageDef{repo: aks.RepoCoreDNS, tag: tag, index: true, created: day(date), platforms: plats})
}

func (p *plan) cloudNodeManager(tag, date string) {
	plats := p.linuxPlatforms("/usr/local/bin/cloud-node-manager", func(arch string) []string {
		return []string{p.layer("cloud-node-manager/"+tag+"/"+arch, p.bin("usr/local/bin/cloud-node-manager", sz{40 * kib, 10 * mib}))}
	})
	plats = append(plats, platformDef{platform: winAmd64, entrypoint: []string{"cloud-node-manager.exe"},
		layers: []string{p.windowsBase(), p.layer("cloud-node-manager/"+tag+"/windows/amd64", p.bin("Files/cloud-node-manager.exe", sz{40 * kib, 10 * mib}))}})
	p.images = append(p.images, imageDef{repo: aks.RepoCloudNodeManager, tag: tag, index: true, created: day(date), platforms: plats})
}

func (p *plan) azureCNS(tag, date string) {
	plats := p.linuxPlatforms("/usr/local/bin/azure-cns", func(arch string) []string {
		return []string{
			p.layer("azure-cns/deps/"+arch, p.bin("usr/sbin/ebtables", sz{16 * kib, 2 * mib}), p.bin("usr/sbin/iptables", sz{16 * kib, 4 * mib})),
			p.layer("azure-cns/"+tag+"/"+arch, p.bin("usr/local/bin/azure-cns", sz{48 * kib, 12 * mib})),
		}
	})
	plats = append(plats, platformDef{platform: winAmd64, entrypoint: []string{"azure-cns.exe"},
		layers: []string{p.windowsBase(),
			p.layer("azure-cns/deps/windows", p.bin("Files/hns/hnsdiag.exe", sz{16 * kib, 4 * mib})),
			p.layer("azure-cns/"+tag+"/windows/amd64", p.bin("Files/azure-cns.exe", sz{48 * kib, 12 * mib}))}})
	p.images = append(p.images, imageDef{repo: aks.RepoCNS, tag: tag, docker: true, index: true, created: day(date), platforms: plats})
}

func (p *plan) cilium(tag, date string) {
	plats := p.linuxPlatforms("/usr/bin/cilium-agent", func(arch string) []string {
		return []string{
			p.layer("cilium/deps/"+arch,
				p.bin("usr/local/bin/clang", sz{48 * kib, 18 * mib}),
				p.bin("usr/local/bin/llc", sz{32 * kib, 10 * mib}),
				p.bin("usr/local/bin/bpftool", sz{16 * kib, 2 * mib}),
				p.bin("usr/local/bin/ip", sz{8 * kib, 1 * mib})),
			p.layer("cilium/"+tag+"/agent/"+arch,
				p.bin("usr/bin/cilium-agent", sz{64 * kib, 20 * mib}),
				p.bin("usr/bin/cilium-dbg", sz{32 * kib, 6 * mib}),
				p.data("var/lib/cilium/bpf/bpf_lxc.c", sz{8 * kib, 256 * kib})),
			p.layer("cilium/"+tag+"/cni/"+arch,
				p.bin("opt/cni/bin/cilium-cni", sz{16 * kib, 4 * mib}),
				txt("etc/cni/net.d/05-cilium.conflist", `{"cniVersion":"0.3.1","name":"cilium","plugins":[{"type":"cilium-cni"}]}`+"\n")),
		}
	})
	p.images = append(p.images, imageDef{repo: aks.RepoCilium, tag: tag, docker: true, index: true, created: day(date), platforms: plats})
}

// kubelet adds the kubelet package (an index of per-arch artifacts) and the
// kubernetes-node binary artifacts, which share the kubelet layer.
func (p *plan) kubelet(version, date string) {
	var pkg []platformDef
	for _, pl := range linuxArchs {
		a := pl.Architecture
		kubelet := p.layer("kubelet/"+version+"/"+a, p.bin("kubelet", sz{64 * kib, 24 * mib}))
		kubectl := p.layer("kubectl/"+version+"/"+a, p.bin("kubectl", sz{32 * kib, 12 * mib}))
		pkg = append(pkg, platformDef{platform: pl, layers: []string{kubelet}, titles: []string{"kubelet-linux-" + a + ".tar.gz"}})
		p.images = append(p.images, imageDef{repo: aks.RepoKubernetesNode, tag: version + "-linux-" + a,
			artifactType: ArtifactTypeBinaryPackage, created: day(date),
			platforms: []platformDef{{platform: pl, layers: []string{kubelet, kubectl},
				titles: []string{"kubelet-linux-" + a + ".tar.gz", "kubectl-linux-" + a + ".tar.gz"}}}})
	}
	p.images = append(p.images, imageDef{repo: aks.RepoKubeletPackage, tag: version, index: true,
		artifactType: ArtifactTypeKubeletPackage, created: day(date), platforms: pkg})
}

func (p *plan) credentialProvider(version, date string) {
	for _, pl := range linuxArchs {
		a := pl.Architecture
		l := p.layer("acr-credential-provider/"+version+"/"+a, p.bin("azure-acr-credential-provider", sz{24 * kib, 8 * mib}))
		p.images = append(p.images, imageDef{repo: aks.RepoCredentialProvider, tag: version + "-linux-" + a,
			artifactType: ArtifactTypeBinaryPackage, created: day(date),
			platforms: []platformDef{{platform: pl, layers: []string{l}, titles: []string{"azure-acr-credential-provider-linux-" + a + ".tar.gz"}}}})
	}
}

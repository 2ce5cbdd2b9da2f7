package bench

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/deploy/aks"
	"github.com/airlock/airlock/upstream/images"
)

// ScenarioPull is the scenario of runs against registries the bench did
// not start: one cluster event, nodes arriving as --arrival says.
const ScenarioPull = "pull"

// planTarget is a registry nodes pull from, as the plan names it.
type planTarget struct {
	Name   string `json:"name"`   // host[/prefix], the report's target column
	URL    string `json:"url"`    // scheme://host[:port]
	Prefix string `json:"prefix"` // prepended to every image's repository path
}

// planImage is an image of the pull set.
type planImage struct {
	Name string `json:"name"` // as listed
	Repo string `json:"repo"` // repository path, without any registry or prefix
	Ref  string `json:"ref"`  // tag or digest
}

// parseRegistry reads a --registry URL, http(s)://host[:port][/path]. A
// path is a prefix of its own, the way hosts.toml's
// [host."https://host/v2/aks-managed-repository"] with override_path maps
// mcr.microsoft.com/x to host/v2/aks-managed-repository/x; "/v2/" may be
// left out. Without a path the registry takes prefix.
func parseRegistry(raw, prefix string) (planTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return planTarget{}, fmt.Errorf("%w: --registry %q: want http(s)://host[:port][/v2/PREFIX]", ErrUsage, raw)
	}
	if p := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(u.Path, "/"), "v2/"), "/"); p != "" && p != "v2" {
		prefix = p
	}
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		if _, err := name.NewRepository("example.test/"+prefix, name.StrictValidation); err != nil {
			return planTarget{}, fmt.Errorf("%w: prefix %q is not a repository path", ErrUsage, prefix)
		}
		prefix += "/"
	}
	t := planTarget{URL: u.Scheme + "://" + u.Host, Prefix: prefix, Name: u.Host}
	if prefix != "" {
		t.Name += "/" + strings.TrimSuffix(prefix, "/")
	}
	return t, nil
}

// parseImages reads the pull set: the list file, or else the AKS
// bootstrap set of Kubernetes minor.
func parseImages(file, minor string) ([]planImage, error) {
	var refs []string
	if file == "" {
		bs, err := aks.Bootstrap(minor)
		if err != nil {
			return nil, fmt.Errorf("%w: --kubernetes %s: %v", ErrUsage, minor, err)
		}
		for _, r := range bs {
			refs = append(refs, r.Image())
		}
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("%w: --images: %v", ErrUsage, err)
		}
		defer f.Close()
		if refs, err = images.ParseList(f); err != nil {
			return nil, fmt.Errorf("%w: --images %s: %v", ErrUsage, file, err)
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("%w: --images %s lists no image", ErrUsage, file)
		}
	}
	out := make([]planImage, 0, len(refs))
	for _, s := range refs {
		r, err := name.ParseReference(s)
		if err != nil {
			return nil, fmt.Errorf("%w: image %q: %v", ErrUsage, s, err)
		}
		out = append(out, planImage{Name: s, Repo: r.Context().RepositoryStr(), Ref: r.Identifier()})
	}
	return out, nil
}

// pullSetOf turns plan images into a node's pull set.
func pullSetOf(ims []planImage) []image {
	out := make([]image, len(ims))
	for i, im := range ims {
		out[i] = image{name: im.Name, repo: im.Repo, ref: im.Ref}
	}
	return out
}

// clientSide is what a machine needs to reach registries: credentials and
// TLS, and the platform its nodes pull.
type clientSide struct {
	auth     AuthOptions
	keychain authn.Keychain // nil: authn.DefaultKeychain
	platform v1.Platform
}

// instances makes the plan's targets reachable with this machine's
// credentials and certificates.
func (cs *clientSide) instances(ts []planTarget) ([]*instance, error) {
	tlsCfg, err := cs.auth.tlsConfig()
	if err != nil {
		return nil, err
	}
	out := make([]*instance, len(ts))
	for i, t := range ts {
		inst := &instance{name: t.Name, url: t.URL, prefix: t.Prefix, tls: tlsCfg, platform: cs.platform, stop: func() error { return nil }}
		reg, err := name.NewRegistry(inst.host(), inst.nameOpts()...)
		if err != nil {
			return nil, fmt.Errorf("%w: --registry %s: %v", ErrUsage, t.URL, err)
		}
		if inst.creds, err = cs.auth.credentialsFor(reg, cs.keychain); err != nil {
			return nil, err
		}
		out[i] = inst
	}
	return out, nil
}

// parsePlatform reads --platform (os/arch[/variant]).
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}, nil
	}
	ps, err := images.ParsePlatforms(s)
	if err != nil || len(ps) != 1 {
		return v1.Platform{}, fmt.Errorf("%w: --platform %q: want one os/arch[/variant]", ErrUsage, s)
	}
	return ps[0], nil
}

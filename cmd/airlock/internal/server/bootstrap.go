package server

import (
	"fmt"
	"strings"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// managedTarget is where the required aks-managed-mcr rule puts
// mcr.microsoft.com/* (SPEC §1), and so where nodes pull bootstrap images.
const managedTarget = "aks-managed-repository/"

// BootstrapImages is deploy.BootstrapImages over the MAR catalog: what a
// node of a Kubernetes version ("1.31.3") pulls at bootstrap, as local
// references under aks-managed-repository/.
func BootstrapImages(version string) ([]string, error) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return nil, fmt.Errorf("Kubernetes version %q", version)
	}
	refs, err := catalog.BootstrapSet(parts[0] + "." + parts[1])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, managedTarget+r.String())
	}
	return out, nil
}

// Package e2e proves airlock against software no one here wrote: the OCI
// distribution-spec conformance suite in pull mode, containerd 1.6 and 2.x
// (ctr; 2.x through its transfer service, with parallel layer fetch), skopeo,
// crane and oras, each pulling through a built `airlock serve` in front of
// the MAR emulator (`airlock mar`), and a network-isolated node made of
// network namespaces that bootstraps with no route anywhere but airlock.
//
// It holds only tests (run them with `make e2e`); they need root and the
// tools scripts/install-tools.sh installs, and with CI=true they fail, never
// skip, when either is missing.
package e2e

package deploy

import (
	"crypto/sha256"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Subscription is the emulated subscription every resource ID names.
const Subscription = "00000000-0000-0000-0000-000000000000"

// DefaultResourceGroup is used when a request names none.
const DefaultResourceGroup = "airlock"

var (
	registryNameRE = regexp.MustCompile(`^[a-z0-9]{5,50}$`)
	clusterNameRE  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$`)
	poolNameRE     = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)
	resourceNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,78}[a-zA-Z0-9_])?$`)
	groupNameRE    = regexp.MustCompile(`^[-\w.()]{1,90}$`)
	regionRE       = regexp.MustCompile(`^[a-z0-9]{2,40}$`)
)

// RegistryID is the resource ID of a registry.
func RegistryID(group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerRegistry/registries/%s", Subscription, group, name)
}

func clusterID(group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s", Subscription, group, name)
}

func endpointID(group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/privateEndpoints/%s", Subscription, group, name)
}

// registryNameFromID accepts a registry resource ID or a bare registry name.
func registryNameFromID(id string) (string, error) {
	if !strings.Contains(id, "/") {
		return strings.ToLower(id), nil
	}
	parts := strings.Split(strings.Trim(id, "/"), "/")
	n := len(parts)
	if n < 4 || !strings.EqualFold(parts[n-2], "registries") || !strings.EqualFold(parts[n-3], "Microsoft.ContainerRegistry") {
		return "", invalid(CodeRegistryNotUsable, "%q is not a container registry resource ID (…/providers/Microsoft.ContainerRegistry/registries/<name>)", id)
	}
	return strings.ToLower(parts[n-1]), nil
}

func checkRegistryName(name string) error {
	if !registryNameRE.MatchString(name) {
		return invalid(CodeInvalidParameter, "registry name %q must be 5-50 lowercase letters and digits", name)
	}
	return nil
}

func checkGroup(group string) error {
	if !groupNameRE.MatchString(group) {
		return invalid(CodeInvalidParameter, "resource group %q must be 1-90 letters, digits, '-', '_', '.', '(' or ')'", group)
	}
	return nil
}

func checkRegion(region string) error {
	if !regionRE.MatchString(region) {
		return invalid(CodeInvalidParameter, "location %q must be a region name like westus2", region)
	}
	return nil
}

// managedRegistryName derives the name of the registry AKS creates for a
// cluster: it contains "bootstrap", as AKS's does.
func managedRegistryName(cluster string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(cluster) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	base := b.String()
	if len(base) > 30 {
		base = base[:30]
	}
	sum := sha256.Sum256([]byte(cluster))
	return fmt.Sprintf("%sbootstrap%x", base, sum[:3])
}

// syntheticAddress is the private endpoint IP of a registry this process
// does not serve: stable, inside 10.224.0.0/12, and data only.
func syntheticAddress(registry string) string {
	sum := sha256.Sum256([]byte(registry))
	return fmt.Sprintf("10.%d.%d.%d", 224+sum[0]%16, sum[1], 4+sum[2]%250)
}

// hostOf is the host part of host[:port].
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func checkAddress(addr string) error {
	host := hostOf(addr)
	if host == "" || strings.ContainsAny(addr, "/\"'\\ \t\n") {
		return invalid(CodeInvalidParameter, "address %q must be host[:port]", addr)
	}
	return nil
}

func checkScheme(s string) error {
	if s != "http" && s != "https" {
		return invalid(CodeInvalidParameter, "scheme %q must be http or https", s)
	}
	return nil
}

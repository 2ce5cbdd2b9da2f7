package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/airlock/airlock/internal/units"
)

// Control configures the control module (emulated ACR/AKS, package deploy):
// which registry this process is the data plane of, where nodes reach it,
// and how often AKS-managed resources are reconciled. The zero value is
// valid: its getters give the defaults.
type Control struct {
	// Registry is the emulated registry this process serves: its cache
	// rules are served with the file's rules, and its private endpoint is
	// this process. A cluster created with a managed registry takes this
	// name when it is free and contains "bootstrap".
	Registry string `yaml:"registry"`
	// Region is the default location of registries and clusters.
	Region string `yaml:"region"`
	// Advertise is host:port, or http(s)://host:port, where nodes reach
	// this process (the private endpoint address). Default: listen.
	Advertise string `yaml:"advertise"`
	// ReconcileInterval is how often managed resources are reconciled.
	ReconcileInterval units.Duration `yaml:"reconcileInterval"`
}

// DefaultRegistry is the registry a process serves when the file names none.
const DefaultRegistry = "airlockbootstrap"

var (
	controlRegistryRE = regexp.MustCompile(`^[a-z0-9]{5,50}$`)
	controlRegionRE   = regexp.MustCompile(`^[a-z0-9]{2,40}$`)
)

// RegistryName is Registry, or DefaultRegistry when unset.
func (c *Control) RegistryName() string {
	if c.Registry == "" {
		return DefaultRegistry
	}
	return c.Registry
}

// RegionName is Region, or westus2 when unset.
func (c *Control) RegionName() string {
	if c.Region == "" {
		return "westus2"
	}
	return c.Region
}

// Interval is ReconcileInterval, or a minute when unset.
func (c *Control) Interval() time.Duration {
	if c.ReconcileInterval == 0 {
		return time.Minute
	}
	return time.Duration(c.ReconcileInterval)
}

func (c *Control) validate() error {
	if c.Registry != "" && !controlRegistryRE.MatchString(c.Registry) {
		return keyErr("control.registry", "%q must be 5-50 lowercase letters and digits", c.Registry)
	}
	if c.Region != "" && !controlRegionRE.MatchString(c.Region) {
		return keyErr("control.region", "%q must be a region name like westus2", c.Region)
	}
	if c.ReconcileInterval < 0 {
		return keyErr("control.reconcileInterval", "must not be negative")
	}
	if c.Advertise != "" {
		if _, _, err := c.Endpoint(""); err != nil {
			return err
		}
	}
	return nil
}

// Endpoint is where nodes reach this process: Advertise, else listen, as
// host:port and a scheme (http unless Advertise says https).
func (c *Control) Endpoint(listen string) (addr, scheme string, err error) {
	addr, scheme = c.Advertise, "http"
	if addr == "" {
		return listen, scheme, nil
	}
	if strings.Contains(addr, "://") {
		u, perr := url.Parse(addr)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", "", keyErr("control.advertise", "%q must be host:port or http(s)://host:port", c.Advertise)
		}
		addr, scheme = u.Host, u.Scheme
	}
	if _, _, serr := net.SplitHostPort(addr); serr != nil {
		return "", "", keyErr("control.advertise", "%q must be host:port or http(s)://host:port", c.Advertise)
	}
	return addr, scheme, nil
}

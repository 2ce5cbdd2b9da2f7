package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock/airlock/cache/content/azstore"
	"github.com/airlock/airlock/storage/azure"
)

// The storage drivers.
const (
	DriverFilesystem = "filesystem"
	DriverAzure      = "azure"
)

// DefaultContainer is storage.azure.container when it is not set.
const DefaultContainer = "airlock"

// DefaultSpoolBytes bounds the azure driver's spool when
// storage.spoolBytes is not set.
const DefaultSpoolBytes = azstore.DefaultSpoolLimit

// AzureDriver reports whether the store is in Azure Blob Storage.
func (s Storage) AzureDriver() bool { return s.Driver == DriverAzure }

// AzureContainer is storage.azure with its defaults (container
// DefaultContainer), also for a Config built in code rather than parsed.
// Call it only with the azure driver (storage.azure set).
func (s Storage) AzureContainer() azure.Config {
	ac := *s.Azure
	if ac.Container == "" {
		ac.Container = DefaultContainer
	}
	return ac
}

func (c *Config) replicaDefaults() {
	if c.Storage.Driver == "" {
		c.Storage.Driver = DriverFilesystem
	}
	if c.Storage.AzureDriver() {
		if c.Storage.SpoolBytes == 0 {
			c.Storage.SpoolBytes = DefaultSpoolBytes
		}
		if c.Storage.Azure != nil && c.Storage.Azure.Container == "" {
			c.Storage.Azure.Container = DefaultContainer
		}
	}
}

// validateReplicas checks storage.driver, storage.azure, storage.spoolBytes
// and the cluster section.
func (c *Config) validateReplicas() error {
	s := c.Storage
	switch s.Driver {
	case "", DriverFilesystem:
		switch {
		case s.Azure != nil:
			return keyErr("storage.azure", "applies only with storage.driver: azure")
		case s.SpoolBytes != 0:
			return keyErr("storage.spoolBytes", "applies only with storage.driver: azure (the filesystem store's quota is storage.maxBytes)")
		case c.Cluster.Enabled():
			return keyErr("cluster", "needs storage.driver: azure: the replicas of a cluster share their store in Azure Blob Storage")
		}
		return nil
	case DriverAzure:
	default:
		hint := ""
		if n := nearest(s.Driver, []string{DriverFilesystem, DriverAzure}); n != "" {
			hint = fmt.Sprintf("; did you mean %s?", n)
		}
		return keyErr("storage.driver", "%q must be filesystem or azure%s", s.Driver, hint)
	}
	if s.SpoolBytes < 0 {
		return keyErr("storage.spoolBytes", "must not be negative")
	}
	if err := validateAzure(s.Azure); err != nil {
		return err
	}
	return validateCluster(c)
}

// validateAzure checks storage.azure key by key, then as the container
// client will.
func validateAzure(a *azure.Config) error {
	if a == nil {
		return keyErr("storage.azure", "is required with storage.driver: azure: set accountName (or serviceURL) and container")
	}
	keys := 0
	for _, k := range []string{a.AccountKey, a.AccountKeyEnv, a.AccountKeyFile} {
		if k != "" {
			keys++
		}
	}
	switch {
	case a.AccountName == "" && a.ServiceURL == "":
		return keyErr("storage.azure.accountName", "is required (the storage account; or serviceURL, its blob endpoint)")
	case keys > 1:
		return keyErr("storage.azure", "set at most one of accountKey, accountKeyEnv and accountKeyFile (none: workload identity)")
	case keys == 1 && a.AccountName == "":
		return keyErr("storage.azure.accountName", "is required with an account key (the key is the account's)")
	}
	if err := a.Validate(); err != nil {
		key := "storage.azure"
		switch msg := err.Error(); {
		case strings.Contains(msg, "serviceURL"):
			key += ".serviceURL"
		case strings.Contains(msg, "container"):
			key += ".container"
		}
		return keyErr(key, "%s", strings.TrimPrefix(err.Error(), "azure: "))
	}
	return nil
}

// clusterKeyRE splits cluster.Config.Validate's messages into the key they
// are about and the rest.
var clusterKeyRE = regexp.MustCompile(`^(cluster(?:\.[A-Za-z]+)?(?:\[\d+\])?):? (.*)$`)

// validateCluster checks the cluster section (cluster.Config.Validate),
// naming the key a problem is about.
func validateCluster(c *Config) error {
	err := c.Cluster.Validate()
	if err == nil {
		return nil
	}
	if m := clusterKeyRE.FindStringSubmatch(err.Error()); m != nil {
		return keyErr(m[1], "%s", m[2])
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return keyErr("cluster", "%v", err)
}

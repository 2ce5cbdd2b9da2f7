// Package configtest writes the airlock configuration files tests start
// servers with: one replica on local storage (Serve), a replica of several
// on an Azure container (Replica), with the rule most tests pull through
// (MCRRule). Only tests import it.
package configtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/storage/azure"
)

// MCRRule is a rules section with the rule aks-managed-mcr:
// mcr.microsoft.com/* served as aks-managed-repository/*, tags fresh 1 h.
const MCRRule = `rules:
  - name: aks-managed-mcr
    source: mcr.microsoft.com/*
    target: aks-managed-repository/*
    tagTTL: 1h
`

// Serve is a configuration listening on listen with its storage in dir,
// mcr.microsoft.com reached at upstream (an emulator or test upstream,
// never the real one), logging warnings, followed by extra (more
// top-level sections, e.g. MCRRule).
func Serve(listen, dir, upstream, extra string) string {
	return fmt.Sprintf(`listen: %s
storage:
  dir: %s
upstreams:
  - host: mcr.microsoft.com
    endpoint: %s
log:
  level: warn
%s`, listen, dir, upstream, extra)
}

// Replica is the configuration of one replica of several sharing an Azure
// Blob Storage container.
type Replica struct {
	// Self is its peer address, where it listens; Peers are all of them.
	Self  string
	Peers []string
	// Dir is its local spool directory.
	Dir string
	// Azure is the shared container.
	Azure azure.Config
	// LeaseDuration is the cluster's fill lease (0: the default).
	LeaseDuration time.Duration
	// Upstream is where mcr.microsoft.com is reached.
	Upstream string
	// LogLevel is the log level ("" is warn).
	LogLevel string
	// Extra holds more top-level sections (rules, control).
	Extra string
}

// YAML is the replica's configuration file.
func (r Replica) YAML() string {
	lease, level := "", r.LogLevel
	if r.LeaseDuration > 0 {
		lease = fmt.Sprintf("  leaseDuration: %s\n", r.LeaseDuration)
	}
	if level == "" {
		level = "warn"
	}
	return fmt.Sprintf(`listen: %s
storage:
  dir: %s
  driver: azure
  azure:
    serviceURL: %s
    accountName: %s
    accountKey: %s
    container: %s
cluster:
  self: %s
  peers: [%s]
%supstreams:
  - host: mcr.microsoft.com
    endpoint: %s
log:
  level: %s
%s`, r.Self, r.Dir, r.Azure.ServiceURL, r.Azure.AccountName, r.Azure.AccountKey, r.Azure.Container,
		r.Self, strings.Join(r.Peers, ", "), lease, r.Upstream, level, r.Extra)
}

// Write writes body as airlock.yaml in a new temporary directory of the
// test and returns its path.
func Write(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

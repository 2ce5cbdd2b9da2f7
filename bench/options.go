package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"go.uber.org/zap"

	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/upstream/mar/catalog"
)

// Scenario names (the command line's --scenario values).
const (
	ScenarioColdOne      = "cold-one"      // one node pulls the bootstrap set, empty cache
	ScenarioWarm         = "warm"          // the same, cache full
	ScenarioStorm        = "storm"         // N nodes at the same instant, empty cache
	ScenarioRanges       = "ranges"        // 16 concurrent 8 MiB Range GETs over one large blob, cold then warm
	ScenarioFlaky        = "flaky"         // storm with cut bodies and 503s upstream
	ScenarioUpstreamSlow = "upstream-slow" // upstream at 50 MB/s with 50 ms header delay
	ScenarioRelay        = "relay"         // airlock-cluster: cold blob GETs through each digest's owner and through a non-owner
	ScenarioFailover     = "failover"      // airlock-cluster: storm, the owner of the big blob being filled killed mid-fill
)

// Scenarios returns every scenario name in the order "all" runs them.
func Scenarios() []string {
	return []string{ScenarioColdOne, ScenarioWarm, ScenarioStorm, ScenarioRanges, ScenarioFlaky, ScenarioUpstreamSlow, ScenarioRelay, ScenarioFailover}
}

// Target names (the command line's --targets values) and the in-process
// reference measured in the warm scenario.
const (
	TargetAirlock      = "airlock"         // the project, a child process
	TargetCluster      = "airlock-cluster" // three airlock replicas on one Azurite, child processes
	TargetDistribution = "distribution"    // distribution v3 proxy, a child process
	TargetDirect       = "direct"          // the emulator itself, no cache
	TargetBare         = "bare"            // http.ServeContent of the same files (warm reference)
)

// Targets returns the selectable target names.
func Targets() []string {
	return []string{TargetAirlock, TargetCluster, TargetDistribution, TargetDirect}
}

// DefaultTargets are the targets measured when none are named: the
// cluster needs Azurite (scripts/install-tools.sh azurite), so it is named.
func DefaultTargets() []string { return []string{TargetAirlock, TargetDistribution, TargetDirect} }

// ErrUsage is wrapped by option errors (the command exits 2).
var ErrUsage = errors.New("usage")

// Options configures a bench run.
type Options struct {
	Scenarios []string      // subset of Scenarios(); default all those the targets run
	Targets   []string      // subset of Targets(); default DefaultTargets()
	Nodes     int           // simulated nodes in storm and flaky; default 100
	Runs      int           // runs per scenario and target; default 5
	Catalog   string        // catalog.NameAKS
	Scale     catalog.Scale // small or full
	Minor     string        // Kubernetes minor version of the bootstrap set; default 1.31
	Seed      uint64        // catalog seed; default 1
	Out       string        // output directory for results.json and report.html
	CacheDir  string        // emulator layer cache ("" = its default)
	WorkDir   string        // parent of per-run storage directories ("" = os temp)

	AirlockCmd      []string // command serving airlock: argv prefix, "serve --config FILE" appended
	AirlockEnv      []string // extra environment for the airlock child
	DistributionCmd []string // command running bench/cmd/distproxy: argv prefix
	BareCmd         []string // command running ServeBare for this catalog; nil = in-process

	LargeSize  int64         // size of the ranges blob; default 128 MiB
	RangeSize  int64         // size of each Range GET; default 8 MiB
	RangeCount int           // concurrent Range GETs; default 16
	RunTimeout time.Duration // bound on one (scenario, target, run); default 10m

	// Registries the bench did not start (--registry): when set, each run
	// is one cluster event of Nodes nodes pulling the image set from each
	// of them (RunRegistries) instead of the scenarios above.
	Registries []string
	ImagesFile string         // image list; "" = the bootstrap set of Minor
	Prefix     string         // prepended to every image's repository path, as hosts.toml's override_path
	Platform   string         // os/arch[/variant] nodes pull from an index; "" = linux/amd64
	Auth       AuthOptions    // credentials and TLS for Registries
	Keychain   authn.Keychain // where Docker-config credentials come from; nil = authn.DefaultKeychain
	MarStats   string         // the MAR emulator behind the registries: per-blob upstream counts
	Arrival    Arrival        // how nodes arrive (storm, flaky and registry runs); zero = storm
	Agents     int            // load machines (airlock bench agent) playing the nodes; 0 = this process
	Listen     string         // coordinator address the agents connect to
	WaitAgents time.Duration  // how long to wait for the agents to connect; default 10m

	Cluster ClusterOptions // what the airlock-cluster target needs

	// Progress is told as each step (one run of a scenario on a target)
	// starts; nil: nothing is reported.
	Progress func(step, steps int, what string)
	// NodeProgress is told nodes done, running and failed (of total)
	// during each multi-node run; nil: nothing is reported.
	NodeProgress func(done, running, failed, total int)
	// Notice is told what a coordinator is doing (agents joining); nil:
	// nothing is reported.
	Notice func(msg string)
	Log    *zap.Logger
}

func (o *Options) defaults() {
	if len(o.Targets) == 0 {
		o.Targets = DefaultTargets()
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = scenariosFor(o.Targets)
	}
	if o.Nodes <= 0 {
		o.Nodes = 100
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.Catalog == "" {
		o.Catalog = catalog.NameAKS
	}
	if o.Scale == "" {
		o.Scale = catalog.ScaleSmall
	}
	if o.Minor == "" {
		o.Minor = "1.31"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.LargeSize <= 0 {
		o.LargeSize = 128 << 20
	}
	if o.RangeSize <= 0 {
		o.RangeSize = 8 << 20
	}
	if o.RangeCount <= 0 {
		o.RangeCount = 16
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	o.Cluster.defaults()
	if o.WaitAgents <= 0 {
		o.WaitAgents = 10 * time.Minute
	}
	if o.Arrival.Kind == "" {
		o.Arrival.Kind = ArrivalStorm
	}
}

// Validate fills defaults and checks names and sizes; errors wrap ErrUsage.
func (o *Options) Validate() error {
	o.defaults()
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			return fmt.Errorf("%w: unknown scenario %q (want all or %s)", ErrUsage, s, strings.Join(Scenarios(), ", "))
		}
	}
	for _, t := range o.Targets {
		if !slices.Contains(Targets(), t) {
			return fmt.Errorf("%w: unknown target %q (want %s)", ErrUsage, t, strings.Join(Targets(), ", "))
		}
	}
	if o.Catalog != catalog.NameAKS {
		return fmt.Errorf("%w: --catalog %q: only %s is supported", ErrUsage, o.Catalog, catalog.NameAKS)
	}
	if o.Scale != catalog.ScaleSmall && o.Scale != catalog.ScaleFull {
		return fmt.Errorf("%w: --scale %q: want small or full", ErrUsage, o.Scale)
	}
	if o.RangeSize*int64(o.RangeCount) > o.LargeSize {
		return fmt.Errorf("%w: %d ranges of %d bytes do not fit in the %d-byte blob", ErrUsage, o.RangeCount, o.RangeSize, o.LargeSize)
	}
	if err := o.validateCluster(); err != nil {
		return err
	}
	return o.validateRegistries()
}

// validateRegistries checks the options of runs against registries the
// bench did not start and of load machines.
func (o *Options) validateRegistries() error {
	switch {
	case o.Agents < 0:
		return fmt.Errorf("%w: --agents %d: want 1 or more", ErrUsage, o.Agents)
	case o.Agents > 0 && len(o.Registries) == 0:
		return fmt.Errorf("%w: --agents needs --registry: agents on other machines cannot reach the targets this process starts on 127.0.0.1", ErrUsage)
	case o.Agents > 0 && o.Listen == "":
		return fmt.Errorf("%w: --agents needs --listen ADDR for the agents to connect to", ErrUsage)
	case o.Agents > o.Nodes:
		return fmt.Errorf("%w: --agents %d is more than --nodes %d", ErrUsage, o.Agents, o.Nodes)
	case len(o.Registries) == 0 && (o.ImagesFile != "" || o.Prefix != "" || o.MarStats != "" || o.Platform != ""):
		return fmt.Errorf("%w: --images, --prefix, --platform and --mar-stats are for --registry", ErrUsage)
	}
	if len(o.Registries) == 0 {
		return nil
	}
	if _, err := parsePlatform(o.Platform); err != nil {
		return err
	}
	for _, r := range o.Registries {
		if _, err := parseRegistry(r, o.Prefix); err != nil {
			return err
		}
	}
	return o.Auth.validate()
}

// checkCommands checks that the selected child-process targets can start.
func (o *Options) checkCommands() error {
	if slices.Contains(o.Targets, TargetAirlock) && len(o.AirlockCmd) == 0 {
		return errors.New("no command to start airlock")
	}
	if slices.Contains(o.Targets, TargetDistribution) && len(o.DistributionCmd) == 0 {
		return errors.New("no command to start the distribution proxy")
	}
	return o.Cluster.check(o)
}

// ParseList splits a comma-separated flag value; "all" (or empty) yields all.
func ParseList(v string, all []string) []string {
	if v == "" || v == "all" {
		return append([]string(nil), all...)
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// ParseSize reads a positive byte count such as "134217728", "128MiB" or
// "1GiB" (units.ParseBytes).
func ParseSize(s string) (int64, error) {
	n, err := units.ParseBytes(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: size %q (want e.g. 128MiB)", ErrUsage, s)
	}
	return n, nil
}

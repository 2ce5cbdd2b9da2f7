package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Set implements pflag.Value.
func (a *Arrival) Set(s string) error {
	v, err := ParseArrival(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Type implements pflag.Value.
func (a *Arrival) Type() string { return "ARRIVAL" }

// Register registers the credential and TLS flags (airlock bench and
// airlock bench agent).
func (a *AuthOptions) Register(fs *pflag.FlagSet) {
	fs.StringVar(&a.Username, "username", "", "user for the registries (with --password-env; default: the Docker config's credentials)")
	fs.StringVar(&a.PasswordEnv, "password-env", "", "environment `VARIABLE` holding --username's password")
	fs.BoolVar(&a.ACRExchange, "acr-exchange", false, "ACR token flow: each node exchanges the credentials at /oauth2/exchange for a refresh token, then gets tokens from /oauth2/token")
	fs.StringVar(&a.AADTokenEnv, "aad-token-env", "", "with --acr-exchange: environment `VARIABLE` holding an Azure AD access token to exchange")
	fs.StringVar(&a.CA, "ca", "", "PEM `FILE` of the CA that signed the registries' certificates (on top of the system's)")
	fs.BoolVar(&a.Insecure, "insecure", false, "do not verify the registries' certificates")
}

// RegistryFlags are the flags of runs against registries the bench did
// not start, of load machines and of the Kubernetes manifests.
type RegistryFlags struct {
	EmitK8s bool
	K8s     K8sOptions
	Linger  time.Duration
}

// Register registers the flags on fs for opts.
func (f *RegistryFlags) Register(fs *pflag.FlagSet, opts *Options) {
	fs.StringArrayVar(&opts.Registries, "registry", nil, "benchmark this registry (http(s)://host[:port][/v2/PREFIX]; repeatable: measured side by side) instead of starting targets")
	fs.StringVar(&opts.ImagesFile, "images", "", "with --registry: image list `FILE` (one reference a line, # comments) instead of --kubernetes's bootstrap set")
	fs.StringVar(&opts.Prefix, "prefix", "", "with --registry: repository prefix, as hosts.toml's override_path maps mcr.microsoft.com/x to REGISTRY/PREFIXx (e.g. aks-managed-repository/)")
	fs.StringVar(&opts.Platform, "platform", "", "with --registry: the platform nodes pull from multi-platform images (default linux/amd64)")
	fs.StringVar(&opts.MarStats, "mar-stats", "", "with --registry: `URL` of the MAR emulator behind the registries, to count upstream requests and bytes per blob")
	fs.Var(&opts.Arrival, "arrival", "how nodes arrive: storm (all at once), ramp:N/s, rolling:SURGE (batches of SURGE, the next when the last is done)")
	fs.IntVar(&opts.Agents, "agents", 0, "with --registry: play the nodes on `K` load machines (airlock bench agent), coordinated from --listen")
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:7070", "with --agents: coordinator `ADDRESS` the agents connect to")
	fs.DurationVar(&opts.WaitAgents, "wait-agents", 10*time.Minute, "with --agents: how long to wait for every agent to connect")
	fs.DurationVar(&f.Linger, "linger", 0, "with --agents: keep serving results.json and report.html on --listen this long after the run")
	fs.BoolVar(&f.EmitK8s, "emit-k8s", false, "with --agents: print Kubernetes manifests (an Indexed Job of agents, the coordinator's Job and Service) that run this bench in a cluster")
	fs.StringVar(&f.K8s.Image, "k8s-image", K8sDefaultImage, "with --emit-k8s: the airlock `IMAGE`")
	fs.StringVar(&f.K8s.Namespace, "k8s-namespace", "", "with --emit-k8s: namespace of the objects (default: kubectl's)")
	opts.Auth.Register(fs)
}

// Check applies the rules between flags that need to know which were
// given: with --registry the scenario flags do not apply and --runs
// defaults to 1; --images and --kubernetes exclude each other. Errors
// wrap ErrUsage.
func (f *RegistryFlags) Check(fs *pflag.FlagSet, opts *Options) error {
	if len(opts.Registries) > 0 {
		for _, n := range []string{"scenario", "targets", "large-size", "distproxy", "catalog", "scale", "seed", "cache-dir"} {
			if fs.Changed(n) {
				return fmt.Errorf("%w: --%s is for the targets the bench starts; with --registry nodes pull --images or --kubernetes's set", ErrUsage, n)
			}
		}
		if !fs.Changed("runs") {
			opts.Runs = 1
		}
	}
	if fs.Changed("images") && fs.Changed("kubernetes") {
		return fmt.Errorf("%w: --images and --kubernetes exclude each other", ErrUsage)
	}
	if (f.EmitK8s || f.Linger > 0) && opts.Agents == 0 {
		return fmt.Errorf("%w: --emit-k8s and --linger need --agents K", ErrUsage)
	}
	return nil
}

// Manifests fills f.K8s from the flags given (the run's flags go to the
// coordinator, credentials to both; files become a ConfigMap) and writes
// the manifests.
func (f *RegistryFlags) Manifests(w io.Writer, fs *pflag.FlagSet, opts *Options) error {
	o := f.K8s
	o.Agents = opts.Agents
	_, port, err := net.SplitHostPort(opts.Listen)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%w: --listen %q: want [HOST]:PORT", ErrUsage, opts.Listen)
	}
	o.Port = int32(p)
	o.Files = map[string]string{}
	skip := map[string]bool{"emit-k8s": true, "k8s-image": true, "k8s-namespace": true, "agents": true, "listen": true,
		"out": true, "linger": true, "cpuprofile": true}
	agentFlags := map[string]bool{"username": true, "password-env": true, "acr-exchange": true, "aad-token-env": true, "ca": true, "insecure": true}
	var visitErr error
	fs.Visit(func(fl *pflag.Flag) {
		if skip[fl.Name] || visitErr != nil {
			return
		}
		values := []string{fl.Value.String()}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			values = sv.GetSlice()
		}
		for _, v := range values {
			switch fl.Name {
			case "images", "ca":
				b, err := os.ReadFile(v)
				if err != nil {
					visitErr = fmt.Errorf("%w: --%s: %v", ErrUsage, fl.Name, err)
					return
				}
				key := map[string]string{"images": "images.txt", "ca": "ca.crt"}[fl.Name]
				o.Files[key] = string(b)
				v = filepath.Join(K8sFilesDir, key)
			case "password-env", "aad-token-env":
				o.SecretEnv = append(o.SecretEnv, v)
			}
			arg := "--" + fl.Name + "=" + v
			o.CoordinatorArgs = append(o.CoordinatorArgs, arg)
			if agentFlags[fl.Name] {
				o.AgentArgs = append(o.AgentArgs, arg)
			}
		}
	})
	if visitErr != nil {
		return visitErr
	}
	if len(opts.Registries) == 0 {
		return fmt.Errorf("%w: --emit-k8s needs --registry: the agents pull from registries the cluster reaches", ErrUsage)
	}
	return EmitK8s(w, o)
}

// ServeResults serves results.json and report.html of dir on addr for d
// (or until ctx ends): what a coordinator in a cluster keeps for
// `kubectl port-forward`.
func ServeResults(ctx context.Context, addr, dir string, d time.Duration, notice func(string)) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("--linger: %w", err)
	}
	mux := http.NewServeMux()
	for _, f := range []string{"results.json", "report.html"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(dir, f)) })
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if notice != nil {
		notice(fmt.Sprintf("serving results.json and report.html on http://%s for %v", ln.Addr(), d))
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-t.C:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar/catalog"
)

// AirlockPrefix is the target namespace of the aks-managed-mcr rule that the
// bench configures: nodes pull mcr.microsoft.com/<repo> as
// <airlock>/aks-managed-repository/<repo>.
const AirlockPrefix = "aks-managed-repository/"

// startEnv is what a target needs to start: the upstream and a fresh directory.
type startEnv struct {
	upstream string // MAR registry URL
	dir      string // empty directory owned by this instance
	cat      *catalog.Catalog
}

// instance is a started target, or a registry the bench did not start.
type instance struct {
	name   string
	url    string // http://127.0.0.1:PORT, or https://...
	prefix string // prepended to upstream repository names
	pid    int    // child process, 0 when in-process
	stop   func() error

	creds    credentials // how a node authenticates; nil: anonymous
	tls      *tls.Config // trusted roots; nil: the system's
	platform v1.Platform // what nodes pull from an index; zero: linux/amd64

	cluster *replicaSet // airlock-cluster: its replicas; url is the first's
}

// host returns host[:port] of the instance.
func (i *instance) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(i.url, "http://"), "https://")
}

// https reports whether the instance speaks TLS.
func (i *instance) https() bool { return strings.HasPrefix(i.url, "https://") }

// nameOpts are the options of references to the instance.
func (i *instance) nameOpts() []name.Option {
	if i.https() {
		return nil
	}
	return []name.Option{name.Insecure}
}

// tlsConfig returns a copy of the TLS settings (nil: the defaults).
func (i *instance) tlsConfig() *tls.Config {
	if i.tls == nil {
		return nil
	}
	return i.tls.Clone()
}

// platformOrDefault is the platform nodes pull.
func (i *instance) platformOrDefault() v1.Platform {
	if i.platform.OS == "" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	return i.platform
}

// target starts fresh instances of one registry.
type target interface {
	start(ctx context.Context, env startEnv) (*instance, error)
}

// targetFunc adapts a function to target.
type targetFunc func(ctx context.Context, env startEnv) (*instance, error)

func (f targetFunc) start(ctx context.Context, env startEnv) (*instance, error) { return f(ctx, env) }

// directTarget is the emulator itself: no cache in between.
func directTarget() target {
	return targetFunc(func(_ context.Context, env startEnv) (*instance, error) {
		return &instance{name: TargetDirect, url: env.upstream, stop: func() error { return nil }}, nil
	})
}

// airlockTarget runs "<cmd> serve --config <dir>/airlock.yaml" on a
// filesystem store.
func airlockTarget(cmd, env []string) target {
	return targetFunc(func(ctx context.Context, se startEnv) (*instance, error) {
		head := fmt.Sprintf("listen: 127.0.0.1:0\nstorage:\n  dir: %s\n", filepath.Join(se.dir, "data"))
		return startAirlock(ctx, TargetAirlock, cmd, env, se, head)
	})
}

// startAirlock writes <dir>/<name>.yaml, head (listen, storage, cluster)
// followed by the aks-managed-mcr rule pointing mcr.microsoft.com at the
// emulator, and runs "<cmd> serve --config" on it as child name.
func startAirlock(ctx context.Context, name string, cmd, env []string, se startEnv, head string) (*instance, error) {
	cfg := head + fmt.Sprintf(`upstreams:
  - host: mcr.microsoft.com
    endpoint: %s
rules:
  - name: aks-managed-mcr
    source: mcr.microsoft.com/*
    target: aks-managed-repository/*
log:
  level: warn
  format: json
`, se.upstream)
	path := filepath.Join(se.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("%s config: %w", name, err)
	}
	argv := append(append([]string(nil), cmd...), "serve", "--config", path)
	inst, err := startChild(ctx, name, argv, env, se.dir)
	if err != nil {
		return nil, err
	}
	inst.prefix = AirlockPrefix
	return inst, nil
}

// distributionTarget runs bench/cmd/distproxy: distribution v3's registry app
// as a pull-through cache of the emulator, filesystem storage. It maps
// repositories 1:1 to the remote, so nodes use the upstream names.
func distributionTarget(cmd []string) target {
	return targetFunc(func(ctx context.Context, se startEnv) (*instance, error) {
		argv := append(append([]string(nil), cmd...), "--remote", se.upstream, "--root", filepath.Join(se.dir, "data"), "--listen", "127.0.0.1:0")
		return startChild(ctx, TargetDistribution, argv, nil, se.dir)
	})
}

// servingLine is what airlock serve and distproxy print once listening.
var servingLine = regexp.MustCompile(`serving on (http://[0-9.:\[\]]+)`)

// startChild starts argv, waits for its "serving on URL" line on stdout and
// for GET /v2/ to answer. The child's stderr (and the rest of its stdout) go
// to <dir>/<name>.log.
func startChild(ctx context.Context, name string, argv, env []string, dir string) (*instance, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	exited := make(chan error, 1)
	drained := make(chan struct{})
	urlc := make(chan string, 1)
	go func() {
		defer close(drained)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if m := servingLine.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
				_, _ = io.Copy(logf, br)
				return
			}
			_, _ = logf.WriteString(line)
			if err != nil {
				return
			}
		}
	}()
	go func() {
		<-drained
		exited <- cmd.Wait()
		logf.Close()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s: killed after 15s without exiting on SIGTERM", name)
		}
	}
	fail := func(err error) (*instance, error) {
		_ = stop()
		return nil, fmt.Errorf("%s: %w%s", name, err, logTail(logPath))
	}
	var url string
	select {
	case url = <-urlc:
	case <-drained:
		return fail(errors.New("exited before serving"))
	case <-time.After(60 * time.Second):
		return fail(errors.New("did not print its address within 60s"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := waitReady(ctx, url); err != nil {
		return fail(err)
	}
	return &instance{name: name, url: url, pid: cmd.Process.Pid, stop: stop}, nil
}

// waitReady polls GET /v2/ until it answers 200 or 401.
func waitReady(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail returns the last lines of a child's log for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return "\n" + s
}

// bareChildTarget runs cmd (airlock bench --serve-bare ...): the bare
// reference in its own process, so that it pays the same cross-process
// costs as the targets it is compared with.
func bareChildTarget(cmd, env []string) target {
	return targetFunc(func(ctx context.Context, se startEnv) (*instance, error) {
		return startChild(ctx, TargetBare, cmd, env, se.dir)
	})
}

// ServeBare serves the catalog described by opts (as the emulator generates
// it) with bareHandler on 127.0.0.1 until ctx ends, after printing
// "bare: serving on http://ADDR" to stdout.
func ServeBare(ctx context.Context, opts catalog.Options, stdout io.Writer) error {
	cat, err := catalog.Generate(ctx, opts)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	srv := &http.Server{Handler: bareHandler(cat), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "bare: serving on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bare: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// bareTarget serves the catalog's manifests and blob files with nothing but
// http.ServeContent (sendfile), in this process: the warm-throughput
// reference when no BareCmd is given (tests).
func bareTarget() target { return handlerTarget(TargetBare, bareHandler) }

// handlerTarget serves, as the target name, the handler made for the
// event's catalog on a free 127.0.0.1 port.
func handlerTarget(name string, handler func(cat *catalog.Catalog) http.Handler) target {
	return targetFunc(func(_ context.Context, se startEnv) (*instance, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		srv := &http.Server{Handler: handler(se.cat), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		return &instance{name: name, url: "http://" + ln.Addr().String(), stop: srv.Close}, nil
	})
}

func bareHandler(cat *catalog.Catalog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/v2/")
		if p == "" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if i := strings.LastIndex(p, "/manifests/"); i > 0 {
			m, err := cat.Resolve(p[:i], p[i+len("/manifests/"):])
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", string(m.MediaType))
			w.Header().Set("Docker-Content-Digest", m.Digest.String())
			w.Header().Set("Content-Length", fmt.Sprint(len(m.Raw)))
			if r.Method != http.MethodHead {
				_, _ = w.Write(m.Raw)
			}
			return
		}
		if i := strings.LastIndex(p, "/blobs/"); i > 0 {
			b, err := blobOf(cat, p[:i], p[i+len("/blobs/"):])
			if err != nil {
				http.NotFound(w, r)
				return
			}
			f, err := b.Open()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Docker-Content-Digest", b.Digest.String())
			http.ServeContent(w, r, "", time.Time{}, f)
			return
		}
		http.NotFound(w, r)
	})
}

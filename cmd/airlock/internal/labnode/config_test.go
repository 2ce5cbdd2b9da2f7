package labnode

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// daemonConfig is what a test reads back from a configuration.
type daemonConfig struct {
	Version         int      `toml:"version"`
	Root            string   `toml:"root"`
	State           string   `toml:"state"`
	Imports         []string `toml:"imports"`
	DisabledPlugins []string `toml:"disabled_plugins"`
	GRPC            struct {
		Address string `toml:"address"`
	} `toml:"grpc"`
	TTRPC struct {
		Address string `toml:"address"`
	} `toml:"ttrpc"`
	Debug struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"debug"`
	Plugins map[string]map[string]any `toml:"plugins"`
}

// Each release gets its configuration format and plugin set; imports,
// logging and the transfer service's fetch settings are written as given,
// and odd paths stay valid TOML.
func TestContainerdConfig(t *testing.T) {
	t.Parallel()
	dir := "/tmp/odd \"dir\"\\é\t"
	for _, tc := range []struct {
		name        string
		cfg         ContainerdConfig
		version     int
		off, on     []string // disabled plugins that must be, and must not be, listed
		level, fmt  string
		transfer    map[string]any
		wantImports []string
	}{{
		name:    "containerd1 defaults",
		cfg:     ContainerdConfig{Dir: dir, Socket: dir + "/c.sock"},
		version: 2,
		off:     []string{"io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs"},
		on:      []string{"io.containerd.cri.v1.runtime"},
		level:   "warn",
	}, {
		name:    "containerd2 node",
		cfg:     ContainerdConfig{Release: Containerd2, Dir: dir, Socket: dir + "/c.sock", Imports: []string{"/n/containerd/config-path-v3.toml"}, LogLevel: "debug", LogJSON: true, Fetch: FetchConfig{ChunkSize: 8 << 20, MaxConcurrentDownloads: 3}},
		version: 3,
		off:     []string{"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"},
		on:      []string{"io.containerd.cri.v1.images"},
		level:   "debug", fmt: "json",
		transfer:    map[string]any{"max_concurrent_downloads": int64(3), "concurrent_layer_fetch_buffer": int64(8 << 20)},
		wantImports: []string{"/n/containerd/config-path-v3.toml"},
	}, {
		name:     "containerd2 defaults",
		cfg:      ContainerdConfig{Release: Containerd2, Dir: dir, Socket: dir + "/c.sock"},
		version:  3,
		off:      []string{"io.containerd.cri.v1.runtime"},
		on:       []string{"io.containerd.cri.v1.images"},
		level:    "warn",
		transfer: nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.check(); err != nil {
				t.Fatal(err)
			}
			text := tc.cfg.config()
			var got daemonConfig
			if err := toml.Unmarshal([]byte(text), &got); err != nil {
				t.Fatalf("not TOML: %v\n%s", err, text)
			}
			if got.Version != tc.version || got.Root != filepath.Join(dir, "root") || got.State != filepath.Join(dir, "state") ||
				got.GRPC.Address != dir+"/c.sock" || got.TTRPC.Address != dir+"/c.sock.ttrpc" ||
				got.Plugins["io.containerd.internal.v1.opt"]["path"] != filepath.Join(dir, "opt") {
				t.Errorf("read back %+v from\n%s", got, text)
			}
			for _, p := range tc.off {
				if !slices.Contains(got.DisabledPlugins, p) {
					t.Errorf("%s is not disabled: %v", p, got.DisabledPlugins)
				}
			}
			for _, p := range tc.on {
				if slices.Contains(got.DisabledPlugins, p) {
					t.Errorf("%s is disabled", p)
				}
			}
			if got.Debug.Level != tc.level || got.Debug.Format != tc.fmt {
				t.Errorf("debug %+v, want level %q format %q", got.Debug, tc.level, tc.fmt)
			}
			if !slices.Equal(got.Imports, tc.wantImports) {
				t.Errorf("imports %v, want %v", got.Imports, tc.wantImports)
			}
			tr, ok := got.Plugins["io.containerd.transfer.v1.local"]
			if ok != (tc.transfer != nil) || len(tr) != len(tc.transfer) {
				t.Fatalf("transfer plugin settings %v, want %v", tr, tc.transfer)
			}
			for k, v := range tc.transfer {
				if tr[k] != v {
					t.Errorf("transfer %s = %v, want %v", k, tr[k], v)
				}
			}
		})
	}
}

// A configuration that cannot be honoured is refused before anything
// starts, naming what is wrong.
func TestContainerdConfigRefused(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("d", maxSocketPath)
	for _, tc := range []struct {
		cfg  ContainerdConfig
		want string
	}{
		{ContainerdConfig{Dir: "/x", Socket: "/x/s", Fetch: FetchConfig{ChunkSize: 1 << 20}}, "are for containerd 2's transfer service, not containerd 1.x"},
		{ContainerdConfig{Release: Containerd2, Dir: "/x", Socket: "/x/s", Fetch: FetchConfig{MaxConcurrentDownloads: -1}}, "negative"},
		{ContainerdConfig{Release: 7, Dir: "/x", Socket: "/x/s"}, "unknown containerd release 7"},
		{ContainerdConfig{Dir: "/x", Socket: "/x/s", LogLevel: "loud"}, `log level "loud": not one of trace, debug, info, warn, error`},
		{ContainerdConfig{Socket: "/x/s"}, "needs a directory"},
		{ContainerdConfig{Dir: "/x", Socket: long}, "longer than 101 bytes"},
		{ContainerdConfig{Dir: "/x", Socket: "/x/s", Imports: []string{"/x/\xff"}}, "not UTF-8"},
	} {
		err := tc.cfg.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.cfg, err, tc.want)
		}
		dir := t.TempDir()
		tc.cfg.Bin, tc.cfg.Ctr = "/bin/false", "/bin/false"
		if tc.cfg.Dir != "" {
			tc.cfg.Dir = filepath.Join(dir, "d")
		}
		if _, err := StartContainerd(context.Background(), tc.cfg); err == nil {
			t.Errorf("%+v: started", tc.cfg)
		}
		if _, err := os.Stat(filepath.Join(dir, "d")); !os.IsNotExist(err) {
			t.Errorf("%+v: refused, but its directory was made (%v)", tc.cfg, err)
		}
	}
}

// A daemon of another release than the one asked for is refused and
// stopped: the version ctr reports decides.
func TestStartContainerdChecksRelease(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("needs /bin/sh and signals")
	}
	bins := t.TempDir()
	daemon, ctr := filepath.Join(bins, "containerd"), filepath.Join(bins, "ctr")
	for path, script := range map[string]string{
		daemon: "#!/bin/sh\nexec sleep 60\n",
		ctr:    "#!/bin/sh\nprintf 'Client:\\n  Version:  2.4.2+unknown\\n\\nServer:\\n  Version:  2.4.2+unknown\\n'\n",
	} {
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := StartContainerd(ctx, ContainerdConfig{Bin: daemon, Ctr: ctr, Dir: filepath.Join(t.TempDir(), "c1")})
	if err == nil || !strings.Contains(err.Error(), "is containerd 2.4.2+unknown, not containerd 1.x") {
		t.Fatalf("a 2.x daemon asked for as 1.x: %v", err)
	}
	d, err := StartContainerd(ctx, ContainerdConfig{Release: Containerd2, Bin: daemon, Ctr: ctr, Dir: filepath.Join(t.TempDir(), "c2")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() != "2.4.2+unknown" {
		t.Errorf("Version %q", d.Version())
	}
	if err := d.Stop(10 * time.Second); err != nil {
		t.Error(err)
	}
}

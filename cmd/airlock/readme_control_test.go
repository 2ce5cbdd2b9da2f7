package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/deploy"
)

// readmeMarker precedes, on its own line, each README block a test runs.
const readmeMarker = "<!-- test: "

// readmeCommands returns the commands of the README's fenced blocks marked
// `<!-- test: name ...-->`, in order: one per line (a trailing backslash
// continues it), without comments and blank lines.
func readmeCommands(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var cmds []string
	blocks := 0
	for i := 0; i < len(lines); i++ {
		rest, ok := strings.CutPrefix(lines[i], readmeMarker)
		if !ok || (rest != name+" -->" && !strings.HasPrefix(rest, name+" ")) {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("README.md:%d: the marker of %s is not followed by a fenced block", i+1, name)
		}
		blocks++
		cur := ""
		for i += 2; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			ln := strings.TrimSpace(lines[i])
			if cur == "" && (ln == "" || strings.HasPrefix(ln, "#")) {
				continue
			}
			if c, more := strings.CutSuffix(ln, "\\"); more {
				cur += c
				continue
			}
			cmds = append(cmds, cur+ln)
			cur = ""
		}
	}
	if blocks == 0 {
		t.Fatalf("README.md has no block marked %s%s -->", readmeMarker, name)
	}
	return cmds
}

// The README's control-module walkthrough runs as written against the lab
// (bin/airlock lab, as `make run` starts it): every command exits 0, from
// the repository root's point of view (bin/airlock, relative --out), with
// AIRLOCK_SERVER naming the lab's address as the default does for a user.
func TestReadmeControlWalkthrough(t *testing.T) {
	t.Parallel()
	cmds := readmeCommands(t, "control-walkthrough")
	// The walkthrough covers what a user of the control module does.
	for _, want := range []string{"acr create ", "acr cache create ", "cluster create --name aks1 --network-isolated",
		"--network-isolated --bootstrap-container-registry-resource-id", "cluster nodeconfig --name aks1", "warm --cluster aks1"} {
		if !slices.ContainsFunc(cmds, func(c string) bool { return strings.Contains(c, want) }) {
			t.Errorf("the walkthrough has no %q", want)
		}
	}
	root := labRoot(t)
	server := startLabProc(t, root, nil).base

	env := []string{"AIRLOCK_SERVER=" + server}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIRLOCK_SERVER=") {
			env = append(env, kv)
		}
	}
	outputs := map[string]string{}
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", "-c", c)
		cmd.Dir, cmd.Env = root, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", c, err, stdout.String(), stderr.String())
		}
		outputs[c] = stdout.String()
	}

	// What the walkthrough did, as the server sees it.
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(server + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	var aks1 deploy.ClusterInfo
	if code := get("/admin/v1/clusters/aks1", &aks1); code != http.StatusOK || !aks1.NetworkIsolated ||
		aks1.BootstrapRegistry == nil || !aks1.BootstrapRegistry.Managed {
		t.Fatalf("cluster aks1: %d %+v", code, aks1.BootstrapRegistry)
	}
	if code := get("/admin/v1/clusters/aks-byo", nil); code != http.StatusNotFound {
		t.Fatalf("cluster aks-byo after its deletion: %d", code)
	}
	var byoRules []deploy.CacheRule
	if code := get("/admin/v1/registries/byoregistry/cacheRules", &byoRules); code != http.StatusOK || len(byoRules) != 2 {
		t.Fatalf("rules of the registry brought: %d %+v", code, byoRules)
	}
	want, err := deploy.NodeBootstrapImages(aks1.KubernetesVersion)
	if err != nil {
		t.Fatal(err)
	}
	var pins struct {
		Pins []struct{ Ref, Owner string } `json:"pins"`
	}
	get("/admin/pins", &pins)
	var pinned []string
	for _, p := range pins.Pins {
		if p.Owner == "aks1-bootstrap" {
			pinned = append(pinned, p.Ref)
		}
	}
	sort.Strings(pinned)
	sort.Strings(want)
	if !slices.Equal(pinned, want) {
		t.Fatalf("pinned as aks1-bootstrap:\n%v\nwant\n%v", pinned, want)
	}
	for _, f := range []string{deploy.HostsTOMLPath, deploy.BootstrapImagesPath} {
		if _, err := os.Stat(filepath.Join(root, "node-aks1", filepath.FromSlash(f))); err != nil {
			t.Errorf("nodeconfig --out node-aks1: %v", err)
		}
	}
	for c, out := range outputs {
		if strings.Contains(c, "warm --cluster aks1") && !strings.Contains(out, fmt.Sprintf("warmed %d/%d images", len(want), len(want))) {
			t.Errorf("%s: %s", c, out)
		}
	}
}

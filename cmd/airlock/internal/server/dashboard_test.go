package server

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"go.uber.org/zap"
)

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// exportedMetrics builds a server and lists every metric it registers,
// with its labels.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\nstorage:\n  dir: %s\n", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv.ln.Close()
	srv.index.Close()
	return srv.prom.exported()
}

var (
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)
	airlockRE  = regexp.MustCompile(`\bairlock_[a-z0-9_]+`)
	byRE       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// Prometheus adds these to every series it scrapes.
var targetLabels = []string{"job", "instance", "pod", "namespace", "service", "container", "endpoint"}

// The dashboard parses, and every metric it queries is one airlock
// exports, grouped only by labels those metrics have.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../../deploy/grafana/airlock.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard needs a uid and a title")
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct {
		Name string `json:"name"`
	}) bool {
		return v.Name == "datasource"
	}) {
		t.Error("dashboard needs a datasource variable")
	}
	exported := exportedMetrics(t)
	metricOf := func(name string) (string, bool) {
		if _, ok := exported[name]; ok {
			return name, true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name {
				if _, ok := exported[base]; ok {
					return base, true
				}
			}
		}
		return "", false
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range all {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q needs targets on the ${datasource} data source", p.Title)
		}
		for _, tg := range p.Targets {
			names := map[string]bool{}
			for _, m := range selectorRE.FindAllStringSubmatch(tg.Expr, -1) {
				names[m[1]] = true
			}
			for _, m := range airlockRE.FindAllString(tg.Expr, -1) {
				names[m] = true
			}
			var labelsOK []string
			labelsOK = append(labelsOK, targetLabels...)
			labelsOK = append(labelsOK, "le")
			for n := range names {
				base, ok := metricOf(n)
				if !ok {
					t.Errorf("panel %q queries %s, which airlock does not export", p.Title, n)
					continue
				}
				used[base] = true
				labelsOK = append(labelsOK, exported[base]...)
			}
			for _, m := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if l = strings.TrimSpace(l); !slices.Contains(labelsOK, l) {
						t.Errorf("panel %q groups by %q, a label none of its metrics has", p.Title, l)
					}
				}
			}
		}
	}
	for _, want := range []string{"airlock_cache_hits_total", "airlock_upstream_bytes_total", "airlock_cache_coalesced_total",
		"airlock_fill_ttfb_seconds", "airlock_storage_bytes", "airlock_storage_quota_bytes"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

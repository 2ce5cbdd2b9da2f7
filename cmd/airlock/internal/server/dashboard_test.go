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
		List []variable `json:"list"`
	} `json:"templating"`
}

type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Definition string `json:"definition"`
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

// replicasRow is the title of the row of per-replica panels, whose
// metrics a replica on Azure Blob Storage exports (dashreplicas_test.go).
const replicasRow = "Replicas"

// loadDashboard decodes the dashboard and checks what every panel needs,
// returning the panels of each row by its title (in order).
func loadDashboard(t *testing.T) (dashboard, map[string][]panel) {
	t.Helper()
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
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool { return v.Name == "datasource" }) {
		t.Error("dashboard needs a datasource variable")
	}
	rows := map[string][]panel{}
	row := ""
	ids := map[int]bool{}
	for _, p := range d.Panels {
		for _, q := range append([]panel{p}, p.Panels...) {
			if ids[q.ID] {
				t.Errorf("panel id %d used twice", q.ID)
			}
			ids[q.ID] = true
		}
		if p.Type == "row" {
			row = p.Title
			rows[row] = append(rows[row], p.Panels...) // a collapsed row holds its panels
			continue
		}
		if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q needs targets on the ${datasource} data source", p.Title)
		}
		rows[row] = append(rows[row], p)
	}
	return d, rows
}

// exportedMetrics builds a server and lists every metric it registers,
// with its labels.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	return metricsOf(t, fmt.Sprintf("listen: 127.0.0.1:0\nstorage:\n  dir: %s\n", t.TempDir()))
}

// metricsOf builds a server with the configuration yaml (contacting
// nothing) and lists every metric it registers, with its labels.
func metricsOf(t *testing.T, yaml string) map[string][]string {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	return srv.prom.exported()
}

var (
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)
	airlockRE  = regexp.MustCompile(`\bairlock_[a-z0-9_]+`)
	byRE       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	// labelValuesRE is a variable's query: label_values(metric{...}, label).
	labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_]+)\s*\)$`)
)

// Prometheus adds these to every series it scrapes.
var targetLabels = []string{"job", "instance", "pod", "namespace", "service", "container", "endpoint"}

// metricOf is the exported metric a queried series name belongs to (a
// histogram's _bucket, _sum and _count are its own).
func metricOf(exported map[string][]string, name string) (string, bool) {
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

// checkPanels checks that every metric the panels query is exported and
// that they group only by labels those metrics have; it returns the
// metrics used.
func checkPanels(t *testing.T, panels []panel, exported map[string][]string) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, p := range panels {
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
				base, ok := metricOf(exported, n)
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
	return used
}

// The dashboard parses, and every metric its panels (but the replicas
// row's) and its variables query is one airlock exports, grouped only by
// labels those metrics have.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d, rows := loadDashboard(t)
	if len(rows[replicasRow]) == 0 {
		t.Errorf("the dashboard has no %q row", replicasRow)
	}
	exported := exportedMetrics(t)
	used := map[string]bool{}
	for title, panels := range rows {
		if title != replicasRow {
			for m := range checkPanels(t, panels, exported) {
				used[m] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		if base, ok := metricOf(exported, m[1]); !ok || !slices.Contains(append(exported[base], targetLabels...), m[2]) {
			t.Errorf("variable %s lists %s of %s, which airlock does not export", v.Name, m[2], m[1])
		}
	}
	for _, want := range []string{"airlock_cache_hits_total", "airlock_upstream_bytes_total", "airlock_cache_coalesced_total",
		"airlock_fill_ttfb_seconds", "airlock_storage_bytes", "airlock_storage_quota_bytes"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

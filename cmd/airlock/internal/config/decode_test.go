package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
)

// TestErrorMessages: every section's unknown keys, wrong types and refused
// values give one line with the position, the key and what to write.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, body, want string }{
		// Unknown keys, with the key probably meant.
		{"rule key case", "rules:\n  - name: aks-managed-mcr\n    source: mcr.microsoft.com/*\n    target: x/*\n    tagTtl: 5m\n",
			`config: line 5, column 5: rules[0].tagTtl: unknown key; did you mean tagTTL?`},
		{"rule key part", "rules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: x/*, ttl: 5m}\n",
			`config: line 2, column 71: rules[0].ttl: unknown key; did you mean tagTTL?`},
		{"rule key transposed", "rules:\n  - name: aks-managed-mcr\n    soruce: mcr.microsoft.com/*\n",
			`config: line 3, column 5: rules[0].soruce: unknown key; did you mean source?`},
		{"tagList typo", "rules:\n  - name: aks-managed-mcr\n    taglist: local\n",
			`config: line 3, column 5: rules[0].taglist: unknown key; did you mean tagList?`},
		{"storage", "storage:\n  maxbytes: 1GB\n", `config: line 2, column 3: storage.maxbytes: unknown key; did you mean maxBytes?`},
		{"credentialSets", "credentialSets:\n  - name: hub\n    user: me\n",
			`config: line 3, column 5: credentialSets[0].user: unknown key; did you mean username?`},
		{"upstreams", "upstreams:\n  - host: mcr.microsoft.com\n    endpiont: http://127.0.0.1:6000\n",
			`config: line 3, column 5: upstreams[0].endpiont: unknown key; did you mean endpoint?`},
		{"cache", "cache:\n  fillTimout: 1m\n", `config: line 2, column 3: cache.fillTimout: unknown key; did you mean fillTimeout?`},
		{"log", "log:\n  levle: debug\n", `config: line 2, column 3: log.levle: unknown key; did you mean level?`},
		{"auth", "auth:\n  user:\n    - name: a\n", `config: line 2, column 3: auth.user: unknown key; did you mean users?`},
		{"auth scope", "auth:\n  tokens:\n    - name: t\n      scopes:\n        - repos: [a]\n",
			`config: line 5, column 11: auth.tokens[0].scopes[0].repos: unknown key; did you mean repositories?`},
		{"tls", "tls:\n  certificate: c.pem\n", `config: line 2, column 3: tls.certificate: unknown key; did you mean cert?`},
		{"push", "push:\n  maxUpload: 3\n", `config: line 2, column 3: push.maxUpload: unknown key; did you mean maxUploads?`},
		{"http", "http:\n  idletimeout: 1m\n", `config: line 2, column 3: http.idletimeout: unknown key; did you mean idleTimeout?`},
		{"control", "control:\n  bogus: 1\n",
			`config: line 2, column 3: control.bogus: unknown key; the keys here are registry, region, advertise, reconcileInterval`},
		{"top level", "credentialset: []\n", `config: line 1, column 1: credentialset: unknown key; did you mean credentialSets?`},
		{"pin", "pin:\n  - a:1\n", `config: line 1, column 1: pin: unknown key; did you mean pins?`},
		{"wrong section", "maxBytes: 1GB\n", `config: line 1, column 1: maxBytes: unknown key; maxBytes belongs under storage`},
		{"wrong section rule", "tagTTL: 5m\n", `config: line 1, column 1: tagTTL: unknown key; tagTTL belongs under rules`},
		{"set twice", "storage:\n  dir: a\n  dir: b\n", `config: line 3, column 3: storage.dir: is set twice (first on line 2)`},
		// Wrong types name the key and the expected form.
		{"duration", "storage:\n  gcInterval: soon\n",
			`config: line 2, column 15: storage.gcInterval: "soon" is not a duration with a unit, like 30s, 5m or 1h30m`},
		{"duration number", "cache:\n  fillTimeout: 300\n",
			`config: line 2, column 16: cache.fillTimeout: "300" is not a duration with a unit, like 30s, 5m or 1h30m`},
		{"rule ttl", "rules:\n  - {name: aks-managed-mcr, source: mcr.microsoft.com/*, target: x/*, tagTTL: soon}\n",
			`config: line 2, column 79: rules[0].tagTTL: "soon" is not a duration with a unit, like 30s, 5m or 1h30m`},
		{"size", "storage:\n  maxBytes: lots\n",
			`config: line 2, column 13: storage.maxBytes: "lots" is not a number of bytes, optionally with a unit (KB, MB, GB, TB; KiB, MiB, GiB, TiB)`},
		{"integer", "push:\n  maxUploads: ten\n", `config: line 2, column 15: push.maxUploads: "ten" is not a whole number`},
		{"integer fraction", "cache:\n  maxManifestBytes: 1.5\n", `config: line 2, column 21: cache.maxManifestBytes: "1.5" is not a whole number`},
		{"quoted integer", "push:\n  maxUploadsPerClient: \"4\"\n",
			`config: line 2, column 24: push.maxUploadsPerClient: "4" is not a whole number (remove the quotes)`},
		{"float", "storage:\n  highWatermark: high\n", `config: line 2, column 18: storage.highWatermark: "high" is not a number`},
		{"bool", "tls:\n  auto: maybe\n", `config: line 2, column 9: tls.auto: "maybe" is not true or false`},
		{"list", "pins: a:1\n", `config: line 1, column 7: pins: must be a list (one item per line, each starting with "- ")`},
		{"section", "log: debug\n", `config: line 1, column 6: log: must be a section of keys (level, format)`},
		{"scalar", "listen: [a]\n", `config: line 1, column 9: listen: must be a single value, not a list`},
		{"scalar section", "tls:\n  hosts:\n    - {a: b}\n", `config: line 3, column 7: tls.hosts[0]: must be a single value, not a section of keys`},
		{"file", "- a\n", `config: line 1, column 1: the file must be a section of keys (listen, storage, cluster, upstreams, rules, credentialSets, log, cache, control, auth, tls, push, http, pins)`},
		{"syntax", "listen: 127.0.0.1:5000\nstorage:\n  dir: /x\nlog 2\n", `config: line 4: the YAML does not parse: could not find expected ':'`},
		{"several", "log:\n  levle: debug\n  fromat: json\n", `config: line 2, column 3: log.levle: unknown key; did you mean level? (and 1 other problem)`},
		// Values refused after decoding point at the key too.
		{"source host only", "rules:\n  - name: mcr\n    source: mcr.microsoft.com\n    target: mcr\n",
			`config: line 2, column 11: rules[0].name: cache rule "mcr": CacheRuleNameInvalid: name must be 5-50 characters of letters, digits and hyphens`},
		{"source registry only", "rules:\n  - name: mcr-all\n    source: mcr.microsoft.com\n    target: mcr\n",
			`config: line 3, column 13: rules[0].source: cache rule "mcr-all": SourceRepositoryInvalid: source "mcr.microsoft.com" names a registry but no repository: add a repository path, or /* for every repository, e.g. mcr.microsoft.com/*`},
		{"tagList value", "rules:\n  - {name: mcr-all, source: mcr.microsoft.com/*, target: m/*, tagList: cached}\n",
			`config: line 2, column 72: rules[0].tagList: cache rule "mcr-all": TagListInvalid: tagList "cached" must be upstream or local`},
		{"duplicate rule", "rules:\n  - {name: one-rule, source: mcr.microsoft.com/a, target: a}\n  - {name: One-Rule, source: mcr.microsoft.com/b, target: b}\n",
			`config: line 3, column 12: rules[1].name: cache rule "One-Rule": CacheRuleNameAlreadyExists: a rule with this name already exists`},
		{"overlap", "rules:\n  - {name: all-mcr, source: mcr.microsoft.com/*, target: \"*\"}\n  - {name: library, source: mcr.microsoft.com/library/*, target: library/*}\n",
			`config: line 3, column 66: rules[1].target: cache rule "library": WildcardTargetOverlap: target "library/*" overlaps target "*" of rule "all-mcr"`},
		{"credential set", "rules:\n  - {name: mcr-all, source: mcr.microsoft.com/*, target: m/*, credentialSet: nope}\n",
			`config: line 2, column 78: rules[0].credentialSet: cache rule "mcr-all": credential set "nope" is not defined under credentialSets`},
		{"credential set fields", "credentialSets:\n  - name: hub\n", `config: line 2, column 5: credentialSets[0]: needs a name and a username`},
		{"upstream endpoint", "upstreams:\n  - host: mcr.microsoft.com\n    endpoint: ftp://x\n",
			`config: line 3, column 15: upstreams[0].endpoint: "ftp://x" must be http(s)://host[:port]`},
		{"upstream twice", "upstreams:\n  - host: a.io\n  - host: a.io\n", `config: line 3, column 11: upstreams[1].host: host "a.io" is listed twice`},
		{"log level", "log:\n  level: loud\n", `config: line 2, column 10: log.level: "loud" must be debug, info, warn or error`},
		{"listen", "listen: 5000\n", `config: line 1, column 9: listen: "5000" must be host:port: address 5000: missing port in address`},
		{"pins", "pins:\n  - aks-managed-repository/oss/kubernetes/pause\n",
			`config: line 2, column 5: pins[0]: reference "aks-managed-repository/oss/kubernetes/pause" needs a :tag or an @digest`},
		{"watermarks", "storage:\n  maxBytes: 1GB\n  highWatermark: 0.7\n  lowWatermark: 0.8\n", `config: line 1, column 1: storage: watermarks must satisfy 0 < low (0.8) < high (0.7) <= 1`},
		{"gc negative", "storage:\n  gcInterval: -1m\n", `config: line 2, column 15: storage.gcInterval: must not be negative`},
		{"auth empty", "auth:\n  service: x\n", `config: line 1, column 1: auth: define users, tokens or anonymousPull (remove the section to turn auth off)`},
		{"auth user", "auth:\n  users:\n    - name: a\n", `config: line 3, column 7: auth.users[0]: each user needs a name and a passwordHash`},
		{"auth ttl", "auth:\n  anonymousPull: [\"*\"]\n  tokenTTL: -1m\n", `config: line 3, column 13: auth.tokenTTL: must not be negative`},
		{"tls pair", "tls:\n  cert: c.pem\n", `config: line 1, column 1: tls: cert and key go together`},
		{"tls host", "tls:\n  auto: true\n  hosts: [\"a b\"]\n", `config: line 3, column 11: tls.hosts[0]: "a b" is not a host name or IP address`},
		{"push negative", "push:\n  maxUploads: -1\n", `config: line 2, column 15: push.maxUploads: must not be negative`},
		{"http negative", "http:\n  idleTimeout: -5s\n", `config: line 2, column 16: http.idleTimeout: must not be negative`},
		{"control", "control:\n  registry: My-Registry\n", `config: line 2, column 13: control.registry: "My-Registry" must be 5-50 lowercase letters and digits`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.body))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v, want an *Error", err)
			}
			got := err.Error()
			if !strings.HasPrefix(got, c.want) || strings.Contains(got, "\n") {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			for _, goName := range []string{"config.", "rules.Rule", "units.", "int64", "float64", "!!", "unmarshal"} {
				if strings.Contains(got, goName) {
					t.Errorf("%q names a Go type or YAML tag (%s)", got, goName)
				}
			}
		})
	}
}

// TestLoadNamesTheFile: a file's errors start with its name, line and column.
func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	body := "listen: 127.0.0.1:5000\nstorage:\n  dir: ./data\nrules:\n  - name: aks-managed-mcr\n    source: mcr.microsoft.com/*\n    target: aks-managed-repository/*\n    tagTtl: 5m\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	want := "config: " + p + ":8:5: rules[0].tagTtl: unknown key; did you mean tagTTL?"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != p || e.Line != 8 || e.Column != 5 || e.Key != "rules[0].tagTtl" {
		t.Fatalf("fields %+v", e)
	}
	if err := os.WriteFile(p, []byte("rules:\n  - {name: mcr-all, source: mcr.microsoft.com, target: m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), "config: "+p+":2:29: rules[0].source: ") {
		t.Fatalf("refused rule: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestDecodeValues: what the checks let through decodes as before.
func TestDecodeValues(t *testing.T) {
	t.Parallel()
	body := `listen: 0.0.0.0:5000
storage: {dir: /var/lib/airlock, maxBytes: 85GiB, highWatermark: 0.9, lowWatermark: 0.8, gcInterval: 30m}
rules:
  - name: aks-managed-mcr
    source: mcr.microsoft.com/*
    target: aks-managed-repository/*
    credentialSet: mcr
    tagTTL: 10m
    tagList: local
credentialSets: [{name: mcr, username: me, passwordEnv: MCR_PASSWORD}]
upstreams: [{host: mcr.microsoft.com, endpoint: "http://127.0.0.1:6000", insecure: yes}]
cache: {fillTimeout: 1m, maxManifestBytes: 4194304}
defaults: &http
  idleTimeout: 2m
http:
  <<: *http
  readHeaderTimeout: 5s
tls: {auto: true, hosts: [airlock.local, 10.0.0.2]}
log: {level: debug}
pins: ["aks-managed-repository/oss/kubernetes/pause:3.10"]
`
	// "defaults" is not a key: anchors live in a key the file does not have.
	if _, err := Parse([]byte(body)); err == nil || !strings.Contains(err.Error(), "defaults: unknown key") {
		t.Fatalf("anchor holder: %v", err)
	}
	body = strings.Replace(body, "defaults: &http\n  idleTimeout: 2m\nhttp:\n  <<: *http\n", "http:\n  idleTimeout: 2m\n", 1)
	c, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := rules.Rule{Name: "aks-managed-mcr", Source: "mcr.microsoft.com/*", Target: "aks-managed-repository/*", CredentialSet: "mcr",
		TagTTL: units.Duration(10 * time.Minute), TagList: rules.TagListLocal}
	if len(c.Rules) != 1 || c.Rules[0] != want {
		t.Errorf("rules %+v", c.Rules)
	}
	if c.Storage.MaxBytes != 85<<30 || time.Duration(c.Storage.GCInterval) != 30*time.Minute || c.Storage.HighWatermark != 0.9 {
		t.Errorf("storage %+v", c.Storage)
	}
	if !c.Upstreams[0].Insecure || time.Duration(c.HTTP.IdleTimeout) != 2*time.Minute || time.Duration(c.HTTP.ReadHeaderTimeout) != 5*time.Second {
		t.Errorf("upstreams %+v http %+v", c.Upstreams, c.HTTP)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" || len(c.TLS.Hosts) != 2 || c.Cache.MaxManifestBytes != 4<<20 {
		t.Errorf("log %+v tls %+v cache %+v", c.Log, c.TLS, c.Cache)
	}
	m, err := Parse([]byte("http:\n  <<: {idleTimeout: 2m}\n  readHeaderTimeout: 5s\n"))
	if err != nil || time.Duration(m.HTTP.IdleTimeout) != 2*time.Minute {
		t.Errorf("merge key: %+v, %v", m, err)
	}
	if _, err := Parse([]byte("http:\n  <<: {idleTimeot: 2m}\n")); err == nil || !strings.Contains(err.Error(), "http.idleTimeot: unknown key; did you mean idleTimeout?") {
		t.Errorf("merged unknown key: %v", err)
	}
	if _, err := Parse(nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
	if _, err := Parse([]byte("storage:\n  dir: /x\nrules:\n")); err != nil {
		t.Errorf("empty value: %v", err)
	}
}

func TestNearest(t *testing.T) {
	t.Parallel()
	keys := []string{"name", "source", "target", "credentialSet", "tagTTL", "tagList"}
	for in, want := range map[string]string{
		"tagTtl": "tagTTL", "TAGTTL": "tagTTL", "ttl": "tagTTL", "soruce": "source", "targte": "target",
		"credentialset": "credentialSet", "credentials": "credentialSet", "nme": "name", "tags": "", "xyz": "", "registry": "",
	} {
		if got := nearest(in, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{Msg: "config: tls: no such file"}, "config: tls: no such file"},
		{Error{File: "a.yaml", Line: 3, Column: 7, Key: "log.level", Msg: "bad"}, "config: a.yaml:3:7: log.level: bad"},
		{Error{File: "a.yaml", Line: 3, Msg: "the YAML does not parse: x"}, "config: a.yaml:3: the YAML does not parse: x"},
		{Error{File: "a.yaml", Msg: "the YAML does not parse: x"}, "config: a.yaml: the YAML does not parse: x"},
		{Error{Line: 2, Column: 1, Key: "pins", Msg: "bad"}, "config: line 2, column 1: pins: bad"},
		{Error{Key: "control.advertise", Msg: "bad"}, "config: control.advertise: bad"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}

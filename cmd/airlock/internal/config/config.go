// Package config loads and validates airlock's YAML configuration.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/airlock/airlock/cache/cluster"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/storage/azure"
	"github.com/airlock/airlock/upstream"
)

// Config is the whole file.
type Config struct {
	Listen  string  `yaml:"listen"`
	Storage Storage `yaml:"storage"`
	// Cluster makes this replica one of several sharing storage.azure
	// (replicas.go); absent: a replica alone.
	Cluster        cluster.Config  `yaml:"cluster"`
	Upstreams      []Upstream      `yaml:"upstreams"`
	Rules          []rules.Rule    `yaml:"rules"`
	CredentialSets []CredentialSet `yaml:"credentialSets"`
	Log            Log             `yaml:"log"`
	Cache          Cache           `yaml:"cache"`
	Control        Control         `yaml:"control"`
	// Push and security (push.go).
	Auth *Auth `yaml:"auth"`
	TLS  TLS   `yaml:"tls"`
	Push Push  `yaml:"push"`
	HTTP HTTP  `yaml:"http"`
	// Pins are local image references ("repo:tag", "repo@digest") that
	// eviction never removes.
	Pins []string `yaml:"pins"`
}

// Storage says where content and metadata live: under Dir (the
// filesystem driver), or in an Azure Blob Storage container shared by
// replicas, Dir then holding this replica's spool of hot blobs.
type Storage struct {
	Dir string `yaml:"dir"`
	// Driver is filesystem (the default) or azure.
	Driver string `yaml:"driver"`
	// Azure is the container of the azure driver.
	Azure *azure.Config `yaml:"azure"`
	// SpoolBytes bounds the azure driver's spool in Dir (default 10GiB).
	SpoolBytes units.ByteSize `yaml:"spoolBytes"`
	// MaxBytes bounds the content store ("100GiB", "500MB" or bytes); 0:
	// unbounded. Past HighWatermark of it, least recently used cached
	// images are evicted down to LowWatermark of it.
	MaxBytes      units.ByteSize `yaml:"maxBytes"`
	HighWatermark float64        `yaml:"highWatermark"`
	LowWatermark  float64        `yaml:"lowWatermark"`
	// GCInterval is how often unreferenced blobs are collected (default 1h).
	GCInterval units.Duration `yaml:"gcInterval"`
}

// Upstream overrides how a registry host is reached.
type Upstream struct {
	Host     string `yaml:"host"`
	Endpoint string `yaml:"endpoint"`
	Insecure bool   `yaml:"insecure"`
}

// CredentialSet holds upstream credentials. The password is taken from
// passwordFile if set, else from the environment variable passwordEnv, else
// from password.
type CredentialSet struct {
	Name         string `yaml:"name"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordEnv  string `yaml:"passwordEnv"`
	PasswordFile string `yaml:"passwordFile"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json (default) or console
}

// Cache tunes the pull-through engine.
type Cache struct {
	FillTimeout       units.Duration `yaml:"fillTimeout"`
	StallTimeout      units.Duration `yaml:"stallTimeout"`
	RevalidateTimeout units.Duration `yaml:"revalidateTimeout"`
	MaxManifestBytes  int64          `yaml:"maxManifestBytes"`
}

// RelativePaths says how a relative path in a configuration file is read;
// errors about such a path end with it.
const RelativePaths = "a relative path is taken from the directory of the configuration file"

// Load reads, decodes (unknown keys are errors) and validates a file. A
// value's ${NAME} is replaced by the environment variable NAME ($${ is a
// literal ${). A problem is an *Error naming the file, line, column and
// key. Relative paths in the file (storage.dir and its default ./data,
// tls.cert, tls.key, credentialSets[].passwordFile) are taken from the
// file's directory, wherever airlock runs from: the Config holds them
// absolute (storage.azure.accountKeyFile too).
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errorf("config: %v", err)
	}
	c, err := parse(path, b, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, errorf("config: %s: %v", path, err)
	}
	c.resolvePaths(base)
	return c, nil
}

// resolvePaths makes the file's relative paths absolute, from base.
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.Storage.Dir)
	if c.Storage.Azure != nil {
		abs(&c.Storage.Azure.AccountKeyFile)
	}
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	for i := range c.CredentialSets {
		abs(&c.CredentialSets[i].PasswordFile)
	}
}

// Parse decodes and validates a configuration that is not from a file.
func Parse(b []byte) (*Config, error) { return parse("", b, os.LookupEnv) }

func parse(file string, b []byte, env func(string) (string, bool)) (*Config, error) {
	var c Config
	pos, err := decode(file, b, &c, env)
	if err != nil {
		return nil, err
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			pos.place(e, file)
		}
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:5000"
	}
	if c.Storage.Dir == "" {
		c.Storage.Dir = "./data"
	}
	c.replicaDefaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

// Validate checks the whole configuration, the rules' overlap included.
// A problem is an *Error whose Key names the setting.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return keyErr("listen", "%q must be host:port: %v", c.Listen, err)
	}
	seen := map[string]bool{}
	for i, u := range c.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		if u.Host == "" {
			return keyErr(key, "needs a host")
		}
		if seen[u.Host] {
			return keyErr(key+".host", "host %q is listed twice", u.Host)
		}
		seen[u.Host] = true
		if u.Endpoint != "" {
			p, err := url.Parse(u.Endpoint)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || (p.Path != "" && p.Path != "/") {
				return keyErr(key+".endpoint", "%q must be http(s)://host[:port]", u.Endpoint)
			}
		}
	}
	if err := c.validateCredentialSets(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return keyErr("log.format", "%q must be json or console", c.Log.Format)
	}
	if err := c.validateStorage(); err != nil {
		return err
	}
	if err := c.validateReplicas(); err != nil {
		return err
	}
	if err := c.Control.validate(); err != nil {
		return err
	}
	if err := c.validatePush(); err != nil {
		return err
	}
	_, err := c.RuleSet()
	return err
}

func (c *Config) validateCredentialSets() error {
	sets := map[string]bool{}
	for i, cs := range c.CredentialSets {
		if cs.Name == "" || cs.Username == "" {
			return keyErr(fmt.Sprintf("credentialSets[%d]", i), "needs a name and a username")
		}
		sets[cs.Name] = true
	}
	for i, r := range c.Rules {
		if r.CredentialSet != "" && !sets[r.CredentialSet] {
			return keyErr(fmt.Sprintf("rules[%d].credentialSet", i), "cache rule %q: credential set %q is not defined under credentialSets", r.Name, r.CredentialSet)
		}
	}
	return nil
}

// RuleSet validates the rules (SPEC §3) and returns them as a set. A
// refused rule is an *Error keyed by the rule's index and field.
func (c *Config) RuleSet() (*rules.Set, error) {
	s, err := rules.NewSet(c.Rules)
	if err == nil {
		return s, nil
	}
	var ve *rules.ValidationError
	if !errors.As(err, &ve) {
		return nil, errorf("config: rules: %v", err)
	}
	return nil, keyErr(ruleKey(c.Rules, ve), "%v", ve)
}

// ruleKey names the rule and field a refusal is about: the rule with the
// refused name that fails on its own (or the second of a duplicated name),
// and the field the code concerns.
func ruleKey(rs []rules.Rule, ve *rules.ValidationError) string {
	idx, first := -1, -1
	for i, r := range rs {
		if !strings.EqualFold(r.Name, ve.Rule) {
			continue
		}
		if ve.Code == rules.CodeDuplicateName {
			if first >= 0 {
				idx = i
				break
			}
			first = i
			continue
		}
		if first < 0 {
			first = i
		}
		var own *rules.ValidationError
		if errors.As(rules.Validate(r), &own) && own.Code == ve.Code {
			idx = i
			break
		}
	}
	if idx < 0 {
		idx = first
	}
	if idx < 0 {
		return "rules"
	}
	field := map[rules.Code]string{
		rules.CodeInvalidName: "name", rules.CodeDuplicateName: "name",
		rules.CodeInvalidSource: "source", rules.CodeInvalidTarget: "target",
		rules.CodeWildcardMismatch: "target", rules.CodeDuplicateTarget: "target",
		rules.CodeWildcardOverlap: "target", rules.CodeInvalidTTL: "tagTTL",
		rules.CodeInvalidTagList: "tagList",
	}[ve.Code]
	key := fmt.Sprintf("rules[%d]", idx)
	if field != "" {
		key += "." + field
	}
	return key
}

// Credentials resolves every credential set's secret, by name.
func (c *Config) Credentials() (map[string]upstream.Credentials, error) {
	out := map[string]upstream.Credentials{}
	for _, cs := range c.CredentialSets {
		pw, err := cs.Secret()
		if err != nil {
			return nil, err
		}
		out[cs.Name] = upstream.Credentials{Username: cs.Username, Password: pw}
	}
	return out, nil
}

// Secret resolves a credential set's password.
func (cs CredentialSet) Secret() (string, error) {
	switch {
	case cs.PasswordFile != "":
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return "", errorf("config: credential set %q: passwordFile: %v (%s)", cs.Name, err, RelativePaths)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case cs.PasswordEnv != "":
		v, ok := os.LookupEnv(cs.PasswordEnv)
		if !ok {
			return "", errorf("config: credential set %q: environment variable %s is not set", cs.Name, cs.PasswordEnv)
		}
		return v, nil
	}
	return cs.Password, nil
}

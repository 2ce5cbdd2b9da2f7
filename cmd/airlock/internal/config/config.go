// Package config loads and validates airlock's YAML configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/airlock/airlock/rules"
	"gopkg.in/yaml.v3"
)

// Config is the whole file.
type Config struct {
	Listen         string          `yaml:"listen"`
	Storage        Storage         `yaml:"storage"`
	Upstreams      []Upstream      `yaml:"upstreams"`
	Rules          []Rule          `yaml:"rules"`
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

// Storage says where content and metadata live.
type Storage struct {
	Dir string `yaml:"dir"`
	// MaxBytes bounds the content store ("100GiB", "500MB" or bytes); 0:
	// unbounded. Past HighWatermark of it, least recently used cached
	// images are evicted down to LowWatermark of it.
	MaxBytes      ByteSize `yaml:"maxBytes"`
	HighWatermark float64  `yaml:"highWatermark"`
	LowWatermark  float64  `yaml:"lowWatermark"`
	// GCInterval is how often unreferenced blobs are collected (default 1h).
	GCInterval Duration `yaml:"gcInterval"`
}

// Upstream overrides how a registry host is reached.
type Upstream struct {
	Host     string `yaml:"host"`
	Endpoint string `yaml:"endpoint"`
	Insecure bool   `yaml:"insecure"`
}

// Rule is a cache rule as written in the file.
type Rule struct {
	Name          string   `yaml:"name"`
	Source        string   `yaml:"source"`
	Target        string   `yaml:"target"`
	CredentialSet string   `yaml:"credentialSet"`
	TagTTL        Duration `yaml:"tagTTL"`
	TagList       string   `yaml:"tagList"` // upstream (default) or local
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
	FillTimeout       Duration `yaml:"fillTimeout"`
	StallTimeout      Duration `yaml:"stallTimeout"`
	RevalidateTimeout Duration `yaml:"revalidateTimeout"`
	MaxManifestBytes  int64    `yaml:"maxManifestBytes"`
}

// Duration is a time.Duration written as "5m", "30s".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like 5m: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Error is a configuration that cannot be used; the command exits with 2.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// Load reads, decodes (unknown keys are errors) and validates a file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errorf("config: %v", err)
	}
	return Parse(b)
}

// Parse decodes and validates a configuration.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, errorf("config: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	c.defaults()
	if err := c.Validate(); err != nil {
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
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

// Validate checks everything but the rules' overlap, which RuleSet checks.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return errorf("config: listen %q must be host:port: %v", c.Listen, err)
	}
	seen := map[string]bool{}
	for _, u := range c.Upstreams {
		if u.Host == "" {
			return errorf("config: upstreams: an entry has no host")
		}
		if seen[u.Host] {
			return errorf("config: upstreams: host %q is listed twice", u.Host)
		}
		seen[u.Host] = true
		if u.Endpoint != "" {
			p, err := url.Parse(u.Endpoint)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || (p.Path != "" && p.Path != "/") {
				return errorf("config: upstream %s: endpoint %q must be http(s)://host[:port]", u.Host, u.Endpoint)
			}
		}
	}
	sets := map[string]bool{}
	for _, cs := range c.CredentialSets {
		if cs.Name == "" || cs.Username == "" {
			return errorf("config: credentialSets: each needs a name and a username")
		}
		sets[cs.Name] = true
	}
	for _, r := range c.Rules {
		if r.CredentialSet != "" && !sets[r.CredentialSet] {
			return errorf("config: cache rule %q: credential set %q is not defined", r.Name, r.CredentialSet)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return errorf("config: log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return errorf("config: log.format %q must be json or console", c.Log.Format)
	}
	if err := c.validateStorage(); err != nil {
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

// RuleSet validates the rules (SPEC §3) and returns them as a set.
func (c *Config) RuleSet() (*rules.Set, error) {
	rs := make([]rules.Rule, 0, len(c.Rules))
	for _, r := range c.Rules {
		rs = append(rs, rules.Rule{Name: r.Name, Source: r.Source, Target: r.Target, CredentialSet: r.CredentialSet, TagTTL: time.Duration(r.TagTTL), TagList: r.TagList})
	}
	s, err := rules.NewSet(rs)
	if err != nil {
		return nil, errorf("config: %v", err)
	}
	return s, nil
}

// Secret resolves a credential set's password.
func (cs CredentialSet) Secret() (string, error) {
	switch {
	case cs.PasswordFile != "":
		b, err := os.ReadFile(cs.PasswordFile)
		if err != nil {
			return "", errorf("config: credential set %q: %v", cs.Name, err)
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

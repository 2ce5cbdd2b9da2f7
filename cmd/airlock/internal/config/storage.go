package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/reference"
)

// ByteSize is a size in bytes, written as an integer or with a unit:
// "500MB", "100GiB" (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB
// of 1024).
type ByteSize int64

var units = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize parses a size as written in the configuration.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v*mult, 0) || v*mult > math.MaxInt64 {
		return 0, fmt.Errorf("size %q must be a number of bytes, optionally with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	return ByteSize(v * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return int64(b), nil }

// EvictPolicy is the eviction policy the configuration asks for.
func (c *Config) EvictPolicy() evict.Policy {
	return evict.Policy{
		MaxBytes:      int64(c.Storage.MaxBytes),
		HighWatermark: c.Storage.HighWatermark,
		LowWatermark:  c.Storage.LowWatermark,
		Pins:          c.Pins,
	}
}

func (c *Config) validateStorage() error {
	for _, p := range c.Pins {
		if _, err := reference.ParseLocal(p); err != nil {
			return errorf("config: pins: %v", err)
		}
	}
	p := c.EvictPolicy()
	p.Pins = nil
	if err := evict.CheckPolicy(p); err != nil {
		return errorf("config: storage: %v", err)
	}
	if c.Storage.GCInterval < 0 {
		return errorf("config: storage.gcInterval must not be negative")
	}
	return nil
}

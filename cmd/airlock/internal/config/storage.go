package config

import (
	"fmt"

	"github.com/airlock/airlock/cache/evict"
	"github.com/airlock/airlock/reference"
)

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
	for i, p := range c.Pins {
		if _, err := reference.ParseLocal(p); err != nil {
			return keyErr(fmt.Sprintf("pins[%d]", i), "%v", err)
		}
	}
	p := c.EvictPolicy()
	p.Pins = nil
	if err := evict.CheckPolicy(p); err != nil {
		return keyErr("storage", "%v", err)
	}
	if c.Storage.GCInterval < 0 {
		return keyErr("storage.gcInterval", "must not be negative")
	}
	return nil
}

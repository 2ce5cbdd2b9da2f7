package upstreamtest

import (
	"maps"
	"sync"
)

// counter counts requests by key. Its zero value is ready.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

// sum adds the counts of the keys match accepts.
func (c *counter) sum(match func(key string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for k, n := range c.n {
		if match(k) {
			total += n
		}
	}
	return total
}

// Reset zeroes the counters.
func (c *counter) Reset() {
	c.mu.Lock()
	c.n = nil
	c.mu.Unlock()
}

// Counts returns how many requests were made, by key: the Upstream's
// "METHOD /path" (pings included, as "GET /v2/"), the Fake's operation.
func (c *counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

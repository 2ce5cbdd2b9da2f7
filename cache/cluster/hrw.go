package cluster

import "github.com/cespare/xxhash/v2"

// Owner returns the peer of peers that owns key by rendezvous (highest
// random weight) hashing, or "" when peers is empty. It depends only on
// the set of peers, not on their order, so replicas with the same view
// agree; adding or removing one peer moves only the keys that peer wins
// or held.
func Owner(key string, peers []string) string {
	var best string
	var top uint64
	for _, p := range peers {
		s := score(p, key)
		if best == "" || s > top || s == top && p > best {
			best, top = p, s
		}
	}
	return best
}

// score is peer's weight for key: xxhash64 of peer, a zero byte, key.
func score(peer, key string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(peer)
	d.Write([]byte{0})
	d.WriteString(key)
	return d.Sum64()
}

package cluster

import "context"

// confirmedLiveness is the Liveness fill records judge holders by: a peer
// live in the membership view is live; one the view does not know, or
// holds dead, is asked once (a ping, bounded like a probe) before its
// claim is broken. Breaking a live holder's claim would make two replicas
// fetch the blob and fail the first one's readers, so a view that lags
// (a peer back a moment ago) or differs (replicas configured with other
// peers) must not decide alone.
type confirmedLiveness struct {
	m *Membership
	p Prober
}

func (c confirmedLiveness) IsLive(peer string) bool {
	if c.m.IsLive(peer) {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.m.interval)
	defer cancel()
	return c.p.Ping(ctx, peer) == nil
}

package cluster

import (
	"context"
	"fmt"
	"net/http"

	"github.com/airlock/airlock/storage/azure"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// NodeOption tunes NewNode.
type NodeOption func(*nodeOptions)

type nodeOptions struct {
	members []Option
	client  []ClientOption
}

// WithMembershipOptions passes options to NewMembership.
func WithMembershipOptions(opts ...Option) NodeOption {
	return func(o *nodeOptions) { o.members = append(o.members, opts...) }
}

// WithClientOptions passes options to NewClient (WithTLS when the
// replicas serve tls:).
func WithClientOptions(opts ...ClientOption) NodeOption {
	return func(o *nodeOptions) { o.client = append(o.client, opts...) }
}

// Node is one replica's cluster machinery wired together: its membership,
// the peer credential, the peer client and the fill records, all on the
// shared container.
type Node struct {
	// Members is the view of the cluster: Owner, IsLive, MarkDown, SetReady.
	Members *Membership
	// Client relays from peers.
	Client *Client
	// Fills claims fill records.
	Fills *Fills

	keys KeyStore
	cred *Credential
	log  *zap.Logger
	reg  prometheus.Registerer
}

// NewNode builds the replica cfg describes (valid and enabled) on the
// shared container store, its peer key kept in keys. It contacts nothing:
// the replica can neither sign nor verify peer requests before LoadKey,
// is not live in its own view before Members.SetReady(true), and learns of
// its peers once Run runs.
func NewNode(cfg Config, store *azure.Container, keys KeyStore, log *zap.Logger, reg prometheus.Registerer, opts ...NodeOption) (*Node, error) {
	var o nodeOptions
	for _, opt := range opts {
		opt(&o)
	}
	m, err := NewMembership(cfg, log, reg, o.members...)
	if err != nil {
		return nil, err
	}
	cred := &Credential{}
	client, err := NewClient(cred, m.Self(), m, reg, o.client...)
	if err != nil {
		return nil, err
	}
	fills, err := NewFills(store, m.Self(), confirmedLiveness{m: m, p: client}, cfg.Lease(), log, reg)
	if err != nil {
		return nil, err
	}
	return &Node{Members: m, Client: client, Fills: fills, keys: keys, cred: cred, log: log, reg: reg}, nil
}

// LoadKey loads the peer key from the key store, creating it if no
// replica did yet. It fails if the store cannot be read or holds a key of
// the wrong size.
func (n *Node) LoadKey(ctx context.Context) error {
	key, err := loadKey(ctx, n.keys)
	if err != nil {
		return err
	}
	return n.cred.setKey(key)
}

// Handler is the peer surface in front of inner (the registry's OCI
// handler without client auth), to be served at PeerPrefix+"/" without
// client auth. Call it once.
func (n *Node) Handler(inner http.Handler) (http.Handler, error) {
	h, err := PeerHandler(inner, n.cred, n.Members.Self(), n.log, n.reg, WithReady(n.Members.Ready))
	if err != nil {
		return nil, fmt.Errorf("cluster: peer handler: %w", err)
	}
	return h, nil
}

// Run keeps the membership current until ctx is done (Membership.Run).
func (n *Node) Run(ctx context.Context) error {
	defer n.Client.CloseIdleConnections()
	return n.Members.Run(ctx, n.Client)
}

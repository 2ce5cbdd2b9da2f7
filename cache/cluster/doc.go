// Package cluster is what airlock replicas sharing one Azure Blob Storage
// container need among themselves: who the replicas are and which are
// alive, which of them owns a key, the credential that lets a replica
// trust another's request, the HTTP plumbing between them, and the fill
// record that decides which replica fills a blob from upstream. The
// engine's fill logic lives elsewhere; this package knows nothing of it.
//
// # Membership
//
// A replica knows itself (cluster.self, host:port as the others reach it)
// and its peers: a static list (cluster.peers, itself included, the same
// list on every replica) or a headless Service's name (cluster.peersDNS,
// host:port) resolved every few seconds, each A/AAAA record being a peer at
// that port; self must then be this replica's IP:port. Every replica
// probes every other one's GET /_airlock/peer/ping every ~2 s. A peer is
// live after one good probe, dead after three failed ones in a row, and at
// once when a connection to it is refused or cannot be dialled (MarkDown).
// A replica counts itself live while it is ready (SetReady). Replicas come
// and go without the others restarting: a new DNS record is probed, a gone
// one leaves.
//
// # Ownership
//
// Owner(key) is rendezvous (highest random weight) hashing over the live
// view: every peer p scores xxhash64(p || 0x00 || key) and the highest
// score wins (ties: the greater name). Replicas with the same view agree
// without talking; when a peer joins or leaves only the keys it wins or
// held move, about 1/N of them. Blobs are keyed by digest, manifests by
// repo:tag or repo@digest. Views can disagree for a few seconds; the fill
// record settles who fills.
//
// # Peer credential and signed requests
//
// One 32-byte key is created once in the shared store
// (cluster/peer.key, create-if-absent; a replica that loses the race reads
// the winner's). A request between peers carries
//
//	Airlock-Peer:           the sender's self address
//	Airlock-Peer-Time:      Unix seconds when it was signed
//	Airlock-Peer-Hop:       1 for a relay on behalf of a client, +1 per relay
//	Airlock-Peer-Signature: v1=base64url(HMAC-SHA256(key, "airlock-peer-v1\n" +
//	                        method "\n" path?query "\n" time "\n" sender "\n" hop))
//
// The receiver rejects a missing, malformed or wrong signature, a time more
// than 60 s from its clock and a hop outside 1..MaxHops with 401 and OCI
// error JSON, and only GET and HEAD are served: there is no body to sign.
// A captured request can be replayed for at most the skew window, only as
// the same method on the same path and query.
//
// # The peer HTTP surface
//
// PeerHandler serves everything under /_airlock/peer/ and nothing else:
// /_airlock/peer/ping, and /_airlock/peer/v2/... which it hands to the
// registry's OCI handler built WITHOUT client auth, with the prefix
// stripped, so a relayed pull is served exactly like a client pull. The
// client's own replica has authorized the client before relaying. Client
// routes (/v2/...) never look at the peer headers: the registry's auth
// applies to them whatever a client sends, and the peer routes need the
// signature whatever else a client sends.
//
// Client signs its requests (Transport), keeps connections alive, gives up
// dialling after 2 s and waiting for a response header after 30 s, and has
// no overall timeout because blob bodies stream. Relay asks a peer for a
// blob or manifest (Range from an offset); the hop is one more than the
// incoming peer request's in the context, so relays cannot loop.
//
// # Fill records
//
// Fills.ClaimFill(d) decides which replica fills blob d from upstream. The
// record is the small blob fills/<alg>/<hex> holding {holder, instance,
// started, verified}, and the record's blob lease is the claim: whoever
// holds the lease fills. A claim is created with If-None-Match: * (empty
// holder), taken with Acquire Lease (If-Match the ETag that write returned,
// or the one read when the record was there), then rewritten naming the
// holder under the lease, in the background while the claimer checks the
// store (Progress and Release wait for it; a record that cannot be named
// loses the claim): two requests before a blob nobody fills is claimed,
// nothing read first. The holder renews the lease in the
// background until Release (which deletes the record) or until it is lost.
// A contender that finds the lease held by a live holder relays from that
// holder; one that finds the lease expired, or held by a replica that
// membership says is dead and that does not answer a ping either (views
// lag and may differ: a holder the view does not know is asked), or by an
// earlier run of itself, breaks it (If-Match the ETag read) and takes the
// fill over. Every write of a holder carries its lease ID, so a stalled
// ex-holder's write fails.
//
// NewNode contacts nothing; LoadKey reads the peer key from a KeyStore
// (serve keeps it with the metadata index's secrets, azmeta.Index.Secret).
package cluster

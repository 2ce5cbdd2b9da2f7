package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The headers of a signed peer request (see the package doc).
const (
	HeaderPeer      = "Airlock-Peer"
	HeaderTime      = "Airlock-Peer-Time"
	HeaderHop       = "Airlock-Peer-Hop"
	HeaderSignature = "Airlock-Peer-Signature"
)

// Limits of signed requests.
const (
	// KeySize is the peer key's length in bytes.
	KeySize = 32
	// MaxSkew is how far a request's time may be from the receiver's clock.
	MaxSkew = 60 * time.Second
	// MaxHops bounds a chain of relays.
	MaxHops = 3
)

// Sentinel errors of Verify.
var (
	// ErrUnsigned means the request lacks a peer header or has one twice.
	ErrUnsigned = errors.New("cluster: not a signed peer request")
	// ErrStale means the request's time is more than MaxSkew away.
	ErrStale = errors.New("cluster: peer request time outside the allowed skew")
	// ErrBadSignature means a header is malformed or the MAC is wrong.
	ErrBadSignature = errors.New("cluster: bad peer request signature")
	// ErrNoKey means the peer key is not loaded yet (Node.LoadKey): this
	// replica can neither sign nor verify.
	ErrNoKey = errors.New("cluster: peer key not loaded yet")
)

// sigVersion prefixes the signature header and the signed text.
const sigVersion = "v1"

// Credential signs and verifies requests between replicas with the
// cluster's peer key. It is safe for concurrent use.
type Credential struct {
	key atomic.Pointer[[]byte] // nil until the key is loaded
}

// NewCredential returns the credential of a KeySize-byte key.
func NewCredential(key []byte) (*Credential, error) {
	c := &Credential{}
	if err := c.setKey(key); err != nil {
		return nil, err
	}
	return c, nil
}

// setKey gives the credential its KeySize-byte key.
func (c *Credential) setKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("cluster: peer key has %d bytes, want %d", len(key), KeySize)
	}
	k := append([]byte(nil), key...)
	c.key.Store(&k)
	return nil
}

// Sign adds the peer headers to r (a client request) as sent now by
// from, hop hops away from the client. It fails with ErrNoKey before the
// key is loaded.
func (c *Credential) Sign(r *http.Request, from string, hop int) error {
	return c.signAt(r, from, hop, time.Now())
}

func (c *Credential) signAt(r *http.Request, from string, hop int, at time.Time) error {
	key := c.key.Load()
	if key == nil {
		return ErrNoKey
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	h := strconv.Itoa(hop)
	r.Header.Set(HeaderPeer, from)
	r.Header.Set(HeaderTime, ts)
	r.Header.Set(HeaderHop, h)
	r.Header.Set(HeaderSignature, sigVersion+"="+base64.RawURLEncoding.EncodeToString(mac(*key, r.Method, target(r), ts, from, h)))
	return nil
}

// Verify checks r's peer headers (r as received by a server) and returns
// who sent it. Errors wrap ErrUnsigned, ErrStale, ErrBadSignature or
// ErrNoKey.
func (c *Credential) Verify(r *http.Request) (Peer, error) {
	key := c.key.Load()
	if key == nil {
		return Peer{}, ErrNoKey
	}
	var v [4]string
	for i, name := range []string{HeaderPeer, HeaderTime, HeaderHop, HeaderSignature} {
		vals := r.Header.Values(name)
		if len(vals) != 1 || vals[0] == "" {
			return Peer{}, fmt.Errorf("%w: %s", ErrUnsigned, name)
		}
		v[i] = vals[0]
	}
	from, ts, hs, sig := v[0], v[1], v[2], v[3]
	b64, ok := strings.CutPrefix(sig, sigVersion+"=")
	if !ok {
		return Peer{}, fmt.Errorf("%w: unknown scheme", ErrBadSignature)
	}
	got, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: not base64url", ErrBadSignature)
	}
	if !hmac.Equal(got, mac(*key, r.Method, target(r), ts, from, hs)) {
		return Peer{}, ErrBadSignature
	}
	// The fields are authentic from here on; now check what they say.
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: time %q", ErrBadSignature, ts)
	}
	if skew := time.Since(time.Unix(secs, 0)).Abs(); skew > MaxSkew {
		return Peer{}, fmt.Errorf("%w: %s off", ErrStale, skew.Round(time.Second))
	}
	hop, err := strconv.Atoi(hs)
	if err != nil || hop < 1 || hop > MaxHops {
		return Peer{}, fmt.Errorf("%w: hop %q is not 1-%d", ErrBadSignature, hs, MaxHops)
	}
	return Peer{Addr: from, Hop: hop}, nil
}

// mac is the HMAC with key of one request's signed fields.
func mac(key []byte, method, target, ts, from, hop string) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range []string{"airlock-peer-" + sigVersion, method, target, ts, from, hop} {
		m.Write([]byte(s))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// target is the path and query as on the wire: the request line's for a
// received request, the URL's for one about to be sent.
func target(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// Peer is the sender of a verified peer request.
type Peer struct {
	// Addr is the sender's self address, as it signed it.
	Addr string
	// Hop is 1 for a relay on behalf of the sender's own client, one more
	// for each relay after it.
	Hop int
}

type peerKey struct{}

// WithPeer returns ctx marked as serving a request from p.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// FromPeer returns the peer whose request ctx serves, if any. PeerHandler
// marks the requests it passes on; a relay made under such a context is one
// hop further.
func FromPeer(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

package acrauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/airlock/airlock/registry/auth"
	"github.com/golang-jwt/jwt/v5"
)

const issuer = "airlock"

// Grant types, in the "grant_type" claim as ACR's tokens carry it.
const (
	grantAccess  = "access_token"
	grantRefresh = "refresh_token"
)

// accessEntry is one docker token "access" claim entry.
type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	jwt.RegisteredClaims
	GrantType string        `json:"grant_type"`
	Access    []accessEntry `json:"access,omitempty"`
}

// holds reports whether the token grants a.
func (c *claims) holds(a auth.Access) bool {
	for _, e := range c.Access {
		if e.Type == a.Type && e.Name == a.Name && (slices.Contains(e.Actions, a.Action) || slices.Contains(e.Actions, auth.ActionAll)) {
			return true
		}
	}
	return false
}

// signer signs and verifies airlock's tokens with one ES256 key.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

// loadSigner reads the key from path, or creates it (0600) if absent.
func loadSigner(path string) (*signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createSigner(path)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	return parseSigner(b, path)
}

// parseSigner reads a PKCS#8 PEM ECDSA P-256 key; where names it in
// errors.
func parseSigner(b []byte, where string) (*signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("auth: signing key %s: not PEM", where)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: %w", where, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: signing key %s: want an ECDSA P-256 key", where)
	}
	return newSigner(ek)
}

// newKeyPEM generates a signing key as PKCS#8 PEM.
func newKeyPEM() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func createSigner(path string) (*signer, error) {
	b, err := newKeyPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	return parseSigner(b, path)
}

// KeyStore keeps the signing key where every replica of a cluster finds
// it (the shared store), so that a token one replica issued is accepted by
// every other.
type KeyStore interface {
	// LoadOrCreate returns the stored key (PKCS#8 PEM), storing create's
	// if there is none yet; callers on every replica get the key that was
	// stored first.
	LoadOrCreate(ctx context.Context, create func() ([]byte, error)) ([]byte, error)
}

// sharedSigner loads (or creates) the key in ks.
func sharedSigner(ctx context.Context, ks KeyStore) (*signer, error) {
	b, err := ks.LoadOrCreate(ctx, newKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key in the shared store: %w", err)
	}
	return parseSigner(b, "in the shared store")
}

func newSigner(k *ecdsa.PrivateKey) (*signer, error) {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &signer{key: k, kid: hex.EncodeToString(sum[:8])}, nil
}

// issue signs a token for sub ("" = anonymous) with the given audience.
func (s *signer) issue(now time.Time, sub, aud, grantType string, ttl time.Duration, access []accessEntry) (string, error) {
	var jti [12]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{aud},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		GrantType: grantType,
		Access:    access,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = s.kid
	return t.SignedString(s.key)
}

// verify parses a token of the given grant type for aud. Its errors never
// quote the token.
func (s *signer) verify(tok, grantType, aud string, now func() time.Time) (*claims, error) {
	c := &claims{}
	_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
	)
	if err != nil {
		return nil, errors.New("invalid token")
	}
	if c.GrantType != grantType {
		return nil, fmt.Errorf("not a %s", grantType)
	}
	return c, nil
}

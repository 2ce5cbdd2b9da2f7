package acrauth

import (
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
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("auth: signing key %s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: signing key %s: want an ECDSA P-256 key", path)
	}
	return newSigner(ek)
}

func createSigner(path string) (*signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	return newSigner(k)
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

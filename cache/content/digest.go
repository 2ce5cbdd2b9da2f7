package content

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// ValidateDigest is digest.Digest.Validate (same answers, same errors) with
// a fast path for lowercase sha256 and sha512 digests, which skips the
// regexp go-digest runs: it is on the path of every blob request.
func ValidateDigest(d digest.Digest) error {
	s := string(d)
	switch {
	case len(s) == 7+64 && s[:7] == "sha256:" && lowerHex(s[7:]):
		return nil
	case len(s) == 7+128 && s[:7] == "sha512:" && lowerHex(s[7:]):
		return nil
	}
	return d.Validate()
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidateWrite checks the digest a blob is written under: the error
// wraps ErrUnsupportedDigest if its algorithm is not available, and is
// ValidateDigest's if it is malformed.
func ValidateWrite(d digest.Digest) error {
	if err := ValidateDigest(d); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return fmt.Errorf("%w: %s", ErrUnsupportedDigest, d)
		}
		return err
	}
	return nil
}

// ValidateLookup checks a digest a blob is looked up by (Open, Stat,
// Delete): the error wraps ErrUnsupportedDigest if its algorithm is not
// available, ErrNotFound if it is malformed (no blob can have it).
func ValidateLookup(d digest.Digest) error {
	err := ValidateWrite(d)
	if err != nil && !errors.Is(err, ErrUnsupportedDigest) {
		return fmt.Errorf("%w: %s: %v", ErrNotFound, d, err)
	}
	return err
}

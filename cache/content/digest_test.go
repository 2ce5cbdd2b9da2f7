package content

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func FuzzValidateDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("0", 128), "sha256:" + strings.Repeat("A", 64),
		"sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "", "sha256:", "sha384:" + strings.Repeat("a", 96)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := ValidateDigest(digest.Digest(s)), digest.Digest(s).Validate()
		if (got == nil) != (want == nil) {
			t.Fatalf("%q: fast %v, go-digest %v", s, got, want)
		}
	})
}

func TestValidateDigestAlgorithms(t *testing.T) {
	t.Parallel()
	s256 := sha256.Sum256([]byte("x"))
	s512 := sha512.Sum512([]byte("x"))
	for _, d := range []digest.Digest{digest.NewDigestFromBytes(digest.SHA256, s256[:]), digest.NewDigestFromBytes(digest.SHA512, s512[:])} {
		if err := ValidateDigest(d); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
}

func TestValidateWriteAndLookup(t *testing.T) {
	t.Parallel()
	good := digest.FromString("x")
	for _, tc := range []struct {
		d                       digest.Digest
		writeErr, lookupErr     error // sentinel wanted, nil for none
		writeFails, lookupFails bool
	}{
		{good, nil, nil, false, false},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", ErrUnsupportedDigest, ErrUnsupportedDigest, true, true},
		{"sha256:XYZ", nil, ErrNotFound, true, true},
	} {
		werr, lerr := ValidateWrite(tc.d), ValidateLookup(tc.d)
		if (werr != nil) != tc.writeFails || tc.writeErr != nil && !errors.Is(werr, tc.writeErr) || errors.Is(werr, ErrNotFound) {
			t.Errorf("ValidateWrite(%s) = %v", tc.d, werr)
		}
		if (lerr != nil) != tc.lookupFails || tc.lookupErr != nil && !errors.Is(lerr, tc.lookupErr) {
			t.Errorf("ValidateLookup(%s) = %v", tc.d, lerr)
		}
	}
}

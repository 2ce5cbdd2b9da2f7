package azmeta

import (
	"errors"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Blob names of the records. Every record lives under prefix, one blob per
// key: prefix + kind + "/" + its encoded parts, each part terminated by
// term. Secrets (secrets.go) live outside prefix, under the names the
// cluster design gives them.
const (
	prefix = "meta/"

	kTag       = "t" // meta/t/<repo>!<tag>!
	kManifest  = "m" // meta/m/<repo>!<digest>!
	kBlob      = "b" // meta/b/<repo>!<digest>!
	kRepo      = "r" // meta/r/<repo>!
	kReferrers = "f" // meta/f/<repo>!<digest>!
	kAccess    = "a" // meta/a/<repo>!<digest>!
	kPin       = "p" // meta/p/<ref>!<owner>!
	kUpload    = "u" // meta/u/<id>!

	// gateName is the record whose lease is the cluster-wide Exclusive
	// section (gate.go).
	gateName = prefix + "exclusive"

	// maxName is the service's limit on a blob name.
	maxName = 1024
)

// term ends every encoded part. It sorts below every character an encoded
// part can hold, so a name that is a prefix of another sorts first, and no
// part of one record can run into the next part ("a/b"+"v1" and "a"+"b/v1"
// are distinct names).
const term = '!'

// The encoding of a part is byte-order preserving and readable for the
// names a registry uses: the bytes - . / 0-9 A-Z _ a-z stand for
// themselves; any other byte becomes an escape character followed by two
// lowercase hex digits. Each gap between the kept ranges has its own
// escape character placed inside that gap, so an escaped byte sorts
// exactly where the byte does:
//
//	0x00-0x2c  '$'  (between the terminator '!' and '-')
//	0x3a-0x40  '@'  (between '9' and 'A')
//	0x5b-0x5e  '^'  (between 'Z' and '_')
//	0x60       '`'  (between '_' and 'a')
//	0x7b-0xff  '~'  (above 'z')
//
// Every code is either one kept character or three characters starting
// with an escape character, so the code is prefix-free and monotone: the
// lexical order of encoded names (the order Azure lists blobs in) is the
// byte order of the parts, which is what Catalog's paging needs.
func encode(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if kept(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escapeOf(c))
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	b.WriteByte(term)
}

func kept(c byte) bool {
	return c == '-' || c == '.' || c == '/' || c == '_' ||
		'0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func escapeOf(c byte) byte {
	switch {
	case c < '-':
		return '$'
	case c < 'A':
		return '@'
	case c < '_':
		return '^'
	case c < 'a':
		return '`'
	}
	return '~'
}

var errBadName = errors.New("azmeta: not a record name")

// decode reads the parts of an encoded name (without its kind prefix).
func decode(s string) ([]string, error) {
	var parts []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == term:
			parts = append(parts, b.String())
			b.Reset()
		case kept(c):
			b.WriteByte(c)
		default:
			if i+2 >= len(s) {
				return nil, errBadName
			}
			v, ok := unhex(s[i+1], s[i+2])
			if !ok || kept(v) || escapeOf(v) != c {
				return nil, errBadName
			}
			b.WriteByte(v)
			i += 2
		}
	}
	if b.Len() != 0 {
		return nil, errBadName // a part without its terminator
	}
	return parts, nil
}

func unhex(hi, lo byte) (byte, bool) {
	h, ok1 := nibble(hi)
	l, ok2 := nibble(lo)
	return h<<4 | l, ok1 && ok2
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// kindPrefix is where the records of kind live.
func kindPrefix(kind string) string { return prefix + kind + "/" }

// name is the blob name of the record of kind keyed by parts.
func name(kind string, parts ...string) string {
	var b strings.Builder
	b.WriteString(kindPrefix(kind))
	for _, p := range parts {
		encode(&b, p)
	}
	return b.String()
}

// repoPrefix is where the records of kind in repo live (and only repo's:
// the terminator keeps "r/sub" and "rr" out of "r"'s), or every
// repository's when repo is "".
func repoPrefix(kind, repo string) string {
	if repo == "" {
		return kindPrefix(kind)
	}
	return name(kind, repo)
}

// parse returns the parts of a blob name of kind, or errBadName.
func parse(kind, blobName string) ([]string, error) {
	rest, ok := strings.CutPrefix(blobName, kindPrefix(kind))
	if !ok {
		return nil, errBadName
	}
	return decode(rest)
}

func tagName(repo, tag string) string                  { return name(kTag, repo, tag) }
func manifestName(repo string, d digest.Digest) string { return name(kManifest, repo, d.String()) }
func blobName(repo string, d digest.Digest) string     { return name(kBlob, repo, d.String()) }
func repoName(repo string) string                      { return name(kRepo, repo) }
func referrersName(repo string, d digest.Digest) string {
	return name(kReferrers, repo, d.String())
}
func accessName(repo string, d digest.Digest) string { return name(kAccess, repo, d.String()) }
func pinName(ref, owner string) string               { return name(kPin, ref, owner) }
func uploadName(id string) string                    { return name(kUpload, id) }

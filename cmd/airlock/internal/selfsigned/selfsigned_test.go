package selfsigned

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verify(t *testing.T, f Files, host string, now time.Time) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read(t, f.CA))
	blk, _ := pem.Decode(read(t, f.Cert))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: now})
	return err
}

func TestEnsureKeepsCAAndReissuesWhenNeeded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := Ensure(dir, []string{"localhost", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1"} {
		if err := verify(t, f, h, now); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
	}
	if verify(t, f, "registry.example", now) == nil {
		t.Fatal("certificate valid for a host it was not made for")
	}
	if fi, _ := os.Stat(f.Key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	ca, cert := read(t, f.CA), read(t, f.Cert)
	// Same hosts: everything reused.
	if _, err := Ensure(dir, []string{"localhost"}, now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, f.Cert), cert) || !bytes.Equal(read(t, f.CA), ca) {
		t.Fatal("a restart with the same hosts changed the certificates")
	}
	// A new host, or expiry near: a new server certificate from the same CA.
	for _, c := range []struct {
		hosts []string
		at    time.Time
	}{{[]string{"localhost", "registry.example"}, now}, {[]string{"localhost"}, now.Add(380 * 24 * time.Hour)}} {
		f, err = Ensure(dir, c.hosts, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(read(t, f.Cert), cert) || !bytes.Equal(read(t, f.CA), ca) {
			t.Fatalf("hosts %v at %v: want a new server certificate under the same CA", c.hosts, c.at)
		}
		if err := verify(t, f, c.hosts[len(c.hosts)-1], c.at); err != nil {
			t.Fatal(err)
		}
		cert = read(t, f.Cert)
	}
}

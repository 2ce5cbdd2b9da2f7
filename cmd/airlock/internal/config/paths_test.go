package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Relative paths in a configuration file are taken from the file's
// directory, whatever the working directory; absolute ones stay; the
// default storage.dir (./data) is the file's directory's data; an error
// about such a path says how it was read.
func TestLoadRelativePaths(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc", "airlock")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root) // not the file's directory
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(etc, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("pw", "secret\n")
	abs := filepath.Join(root, "abs-key.pem")
	c, err := Load(write("a.yaml", "storage:\n  dir: ./store\ntls:\n  cert: certs/tls.crt\n  key: "+abs+"\n"+
		"credentialSets:\n  - {name: up, username: u, passwordFile: pw}\n  - {name: gone, username: u, passwordFile: missing}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ key, got, want string }{
		{"storage.dir", c.Storage.Dir, filepath.Join(etc, "store")},
		{"tls.cert", c.TLS.Cert, filepath.Join(etc, "certs", "tls.crt")},
		{"tls.key", c.TLS.Key, abs},
		{"credentialSets[0].passwordFile", c.CredentialSets[0].PasswordFile, filepath.Join(etc, "pw")},
	} {
		if p.got != p.want {
			t.Errorf("%s: %s, want %s", p.key, p.got, p.want)
		}
	}
	if pw, err := c.CredentialSets[0].Secret(); err != nil || pw != "secret" {
		t.Errorf("password from the file beside the config: %q, %v", pw, err)
	}
	if _, err := c.CredentialSets[1].Secret(); err == nil || !strings.Contains(err.Error(), filepath.Join(etc, "missing")) ||
		!strings.HasSuffix(err.Error(), "("+RelativePaths+")") {
		t.Errorf("missing password file: %v", err)
	}

	d, err := Load(write("b.yaml", "listen: 127.0.0.1:5000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(etc, "data"); d.Storage.Dir != want {
		t.Errorf("default storage.dir %s, want %s", d.Storage.Dir, want)
	}
	// A path to the file relative to the working directory works alike.
	rel, err := Load(filepath.Join("etc", "airlock", "b.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rel.Storage.Dir != d.Storage.Dir {
		t.Errorf("config named relatively: storage.dir %s, want %s", rel.Storage.Dir, d.Storage.Dir)
	}
}

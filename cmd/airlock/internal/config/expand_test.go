package config

import (
	"strings"
	"testing"
)

// envOf is an environment of the given variables only.
func envOf(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// Values name environment variables as ${NAME}; what they expand to is
// typed and validated as if it were written in the file.
func TestExpandEnv(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"POD_IP": "10.244.1.7", "MAX": "4096", "EMPTY": "", "KEY": "s3cr$t"})
	const body = `listen: ${POD_IP}:5000
cache:
  maxManifestBytes: ${MAX}
credentialSets:
  - name: a
    username: u${EMPTY}
    password: &pw "p$${Z}-${KEY}"
  - name: b
    username: u
    password: *pw
  - name: c
    username: u
    password: pa$$word
`
	c, err := parse("airlock.yaml", []byte(body), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "10.244.1.7:5000" {
		t.Errorf("listen = %q", c.Listen)
	}
	if c.Cache.MaxManifestBytes != 4096 {
		t.Errorf("maxManifestBytes = %d: a plain value is typed after expansion", c.Cache.MaxManifestBytes)
	}
	// $${ is a literal ${ (expanded once, even through an alias); a
	// variable's value is not expanded again; other $ are kept.
	want := []struct{ user, pass string }{{"u", "p${Z}-s3cr$t"}, {"u", "p${Z}-s3cr$t"}, {"u", "pa$$word"}}
	for i, w := range want {
		if cs := c.CredentialSets[i]; cs.Username != w.user || cs.Password != w.pass {
			t.Errorf("credentialSets[%d] = %q/%q, want %q/%q", i, cs.Username, cs.Password, w.user, w.pass)
		}
	}
}

// A reference that cannot be expanded is an error at the value naming it;
// keys are never expanded.
func TestExpandEnvErrors(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"PORT": "5000", "X": "1"})
	cases := []struct{ name, body, want string }{
		{"unset", "listen: 127.0.0.1:${NOPE}\n",
			"config: airlock.yaml:1:9: listen: ${NOPE}: environment variable NOPE is not set"},
		{"in a list", "pins:\n  - repo:${NOPE}\n",
			"config: airlock.yaml:2:5: pins[0]: ${NOPE}: environment variable NOPE is not set"},
		{"not a name", "listen: ${PO-RT}\n",
			"config: airlock.yaml:1:9: listen: ${PO-RT}: want ${NAME}, NAME of letters, digits and _ (write $${ for a literal ${)"},
		{"unclosed", "listen: 127.0.0.1:${PORT\n",
			`config: airlock.yaml:1:9: listen: "${PORT": ${ without a closing } (write $${ for a literal ${)`},
		{"quoted stays a string", "cache:\n  maxManifestBytes: \"${PORT}\"\n",
			`config: airlock.yaml:2:21: cache.maxManifestBytes: "5000" is not a whole number (remove the quotes)`},
		{"keys are not expanded", "${X}: 1\n", "config: airlock.yaml:1:1: ${X}: unknown key"},
		{"expanded then validated", "listen: ${PORT}\n",
			`config: airlock.yaml:1:9: listen: "5000" must be host:port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse("airlock.yaml", []byte(tc.body), env)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v\nwant prefix %s", err, tc.want)
			}
		})
	}
}

package config

import (
	"fmt"
	"net"
	"strings"

	"github.com/airlock/airlock/internal/units"
)

// Auth turns authentication on (it is off when the section is absent):
// users and ACR-style scoped tokens with bcrypt password hashes, and
// repositories anyone may pull.
type Auth struct {
	Users         []AuthUser  `yaml:"users"`
	Tokens        []AuthToken `yaml:"tokens"`
	AnonymousPull []string    `yaml:"anonymousPull"`
	// Service is the token audience and challenge service; default the
	// Host the client used.
	Service         string         `yaml:"service"`
	TokenTTL        units.Duration `yaml:"tokenTTL"`
	RefreshTokenTTL units.Duration `yaml:"refreshTokenTTL"`
}

// AuthUser may do everything to every repository; Admin also reads the
// metrics and uses the admin API.
type AuthUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"passwordHash"`
	Admin        bool   `yaml:"admin"`
}

// AuthToken is a scoped token: only what its scopes grant.
type AuthToken struct {
	Name         string      `yaml:"name"`
	PasswordHash string      `yaml:"passwordHash"`
	Scopes       []AuthScope `yaml:"scopes"`
}

// AuthScope grants actions (pull, push, delete, *) on repository patterns
// (a name, a namespace/*, or *).
type AuthScope struct {
	Repositories []string `yaml:"repositories"`
	Actions      []string `yaml:"actions"`
}

// TLS serves HTTPS with a given certificate, or with one airlock makes
// (auto) and signs with a CA it keeps in <storage>/tls.
type TLS struct {
	Cert  string   `yaml:"cert"`
	Key   string   `yaml:"key"`
	Auto  bool     `yaml:"auto"`
	Hosts []string `yaml:"hosts"` // extra names/addresses for the auto certificate
}

// Enabled reports whether HTTPS is on.
func (t TLS) Enabled() bool { return t.Auto || t.Cert != "" }

// Push tunes blob uploads.
type Push struct {
	UploadTimeout       units.Duration `yaml:"uploadTimeout"`       // idle upload sessions are discarded after this
	MaxUploadsPerClient int            `yaml:"maxUploadsPerClient"` // open sessions per user or address
	MaxUploads          int            `yaml:"maxUploads"`          // open sessions in all
}

// HTTP tunes the server against slow or idle clients.
type HTTP struct {
	ReadHeaderTimeout units.Duration `yaml:"readHeaderTimeout"`
	IdleTimeout       units.Duration `yaml:"idleTimeout"`
	BodyIdleTimeout   units.Duration `yaml:"bodyIdleTimeout"` // a request body silent this long is cut
}

// validatePush checks the auth, tls, push and http sections.
func (c *Config) validatePush() error {
	if a := c.Auth; a != nil {
		if len(a.Users)+len(a.Tokens)+len(a.AnonymousPull) == 0 {
			return keyErr("auth", "define users, tokens or anonymousPull (remove the section to turn auth off)")
		}
		for i, u := range a.Users {
			if u.Name == "" || u.PasswordHash == "" {
				return keyErr(fmt.Sprintf("auth.users[%d]", i), "each user needs a name and a passwordHash")
			}
		}
		for i, t := range a.Tokens {
			if t.Name == "" || t.PasswordHash == "" || len(t.Scopes) == 0 {
				return keyErr(fmt.Sprintf("auth.tokens[%d]", i), "each token needs a name, a passwordHash and scopes")
			}
		}
		if a.TokenTTL < 0 {
			return keyErr("auth.tokenTTL", "must not be negative")
		}
		if a.RefreshTokenTTL < 0 {
			return keyErr("auth.refreshTokenTTL", "must not be negative")
		}
	}
	t := c.TLS
	switch {
	case t.Auto && (t.Cert != "" || t.Key != ""):
		return keyErr("tls", "set either auto or cert and key, not both")
	case (t.Cert == "") != (t.Key == ""):
		return keyErr("tls", "cert and key go together")
	case len(t.Hosts) > 0 && !t.Auto:
		return keyErr("tls.hosts", "only applies with tls.auto")
	}
	for i, h := range t.Hosts {
		if h == "" || (strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil) {
			return keyErr(fmt.Sprintf("tls.hosts[%d]", i), "%q is not a host name or IP address", h)
		}
	}
	if c.Push.MaxUploadsPerClient < 0 {
		return keyErr("push.maxUploadsPerClient", "must not be negative")
	}
	if c.Push.MaxUploads < 0 {
		return keyErr("push.maxUploads", "must not be negative")
	}
	for _, d := range []struct {
		key string
		v   units.Duration
	}{{"push.uploadTimeout", c.Push.UploadTimeout}, {"http.readHeaderTimeout", c.HTTP.ReadHeaderTimeout},
		{"http.idleTimeout", c.HTTP.IdleTimeout}, {"http.bodyIdleTimeout", c.HTTP.BodyIdleTimeout}} {
		if d.v < 0 {
			return keyErr(d.key, "must not be negative")
		}
	}
	return nil
}

package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/airlock/airlock/cache/engine"
	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/cmd/airlock/internal/selfsigned"
	"github.com/airlock/airlock/registry"
	"github.com/airlock/airlock/registry/auth/acrauth"
	"github.com/airlock/airlock/rules"
	"go.uber.org/zap"
)

// Wiring of push, auth, TLS and the HTTP server's defences.

// pushEngineOptions are the engine options of the push section.
func pushEngineOptions(cfg *config.Config) []engine.Option {
	var opts []engine.Option
	if d := time.Duration(cfg.Push.UploadTimeout); d > 0 {
		opts = append(opts, engine.WithUploadTimeout(d))
	}
	if n := cfg.Push.MaxUploadsPerClient; n > 0 {
		opts = append(opts, engine.WithMaxUploadsPerClient(n))
	}
	if n := cfg.Push.MaxUploads; n > 0 {
		opts = append(opts, engine.WithMaxUploads(n))
	}
	return opts
}

// security returns the authorizer (nil: auth is off) and the registry
// options for pushes and auth: with auth on, the authorizer (with aopts)
// and its token endpoint at /oauth2/.
func security(cfg *config.Config, log *zap.Logger, aopts ...acrauth.Option) (*acrauth.Service, []registry.Option, error) {
	opts := []registry.Option{
		registry.WithMaxManifestSize(cfg.Cache.MaxManifestBytes),
		registry.WithBodyIdleTimeout(time.Duration(cfg.HTTP.BodyIdleTimeout)),
	}
	a := cfg.Auth
	if a == nil {
		return nil, opts, nil
	}
	c := acrauth.Config{
		AnonymousPull: a.AnonymousPull,
		Service:       a.Service,
		AccessTTL:     time.Duration(a.TokenTTL),
		RefreshTTL:    time.Duration(a.RefreshTokenTTL),
		KeyFile:       filepath.Join(cfg.Storage.Dir, "auth", "token-signing-key.pem"),
	}
	for _, u := range a.Users {
		c.Users = append(c.Users, acrauth.User{Name: u.Name, PasswordHash: u.PasswordHash, Admin: u.Admin})
	}
	for _, t := range a.Tokens {
		tok := acrauth.Token{Name: t.Name, PasswordHash: t.PasswordHash}
		for _, s := range t.Scopes {
			tok.Scopes = append(tok.Scopes, acrauth.Scope{Repositories: s.Repositories, Actions: s.Actions})
		}
		c.Tokens = append(c.Tokens, tok)
	}
	svc, err := acrauth.New(c, log.Named("auth"), aopts...)
	if err != nil {
		return nil, nil, &config.Error{Msg: "config: " + err.Error()}
	}
	return svc, append(opts, registry.WithAuth(svc), registry.WithPublicRoute("/oauth2/", "oauth2", svc.Handler())), nil
}

// checkPushedRepos refuses cache rules whose target covers a repository
// holding pushed content (ACR: TargetRepositoryPrefixMatchesExistingRegistries).
func checkPushedRepos(set *rules.Set, index meta.PushedLister) error {
	pushed, err := index.PushedRepos(context.Background())
	if err != nil {
		return err
	}
	for _, r := range set.Rules() {
		if err := rules.CheckExisting(r, pushed); err != nil {
			return &config.Error{Msg: "config: " + err.Error()}
		}
	}
	return nil
}

// listen binds the listener, with TLS when configured. For tls.auto it
// returns the CA file a node must trust.
func listen(cfg *config.Config, ln net.Listener) (_ net.Listener, scheme, caFile string, tc *tls.Config, err error) {
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, "", "", nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	if !cfg.TLS.Enabled() {
		return ln, "http", "", nil, nil
	}
	certFile, keyFile := cfg.TLS.Cert, cfg.TLS.Key
	if cfg.TLS.Auto {
		f, err := selfsigned.Ensure(filepath.Join(cfg.Storage.Dir, "tls"), tlsHosts(cfg), time.Now())
		if err != nil {
			ln.Close()
			return nil, "", "", nil, err
		}
		certFile, keyFile, caFile = f.Cert, f.Key, f.CA
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ln.Close()
		return nil, "", "", nil, &config.Error{Msg: fmt.Sprintf("config: tls: %v (%s)", err, config.RelativePaths)}
	}
	tc = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if caFile != "" {
		caFile, _ = filepath.Abs(caFile)
	}
	return tls.NewListener(ln, tc), "https", caFile, tc, nil
}

// tlsHosts are the names the automatic certificate covers: the listen
// host (this machine's name when listening on every address), localhost,
// the loopback addresses and tls.hosts.
func tlsHosts(cfg *config.Config) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
	} else {
		hosts = append(hosts, host)
	}
	return append(hosts, cfg.TLS.Hosts...)
}

// httpTimeouts are the server's header and idle timeouts (slow-loris).
func httpTimeouts(cfg *config.Config) (readHeader, idle time.Duration) {
	readHeader, idle = 10*time.Second, 120*time.Second
	if d := time.Duration(cfg.HTTP.ReadHeaderTimeout); d > 0 {
		readHeader = d
	}
	if d := time.Duration(cfg.HTTP.IdleTimeout); d > 0 {
		idle = d
	}
	return readHeader, idle
}

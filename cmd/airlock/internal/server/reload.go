package server

import (
	"context"
	"fmt"
	"os"
	"reflect"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"github.com/airlock/airlock/upstream/ociclient"
	"go.uber.org/zap"
)

// endpoints are the configuration's upstream endpoint overrides.
func endpoints(cfg *config.Config) []ociclient.Endpoint {
	eps := make([]ociclient.Endpoint, 0, len(cfg.Upstreams))
	for _, u := range cfg.Upstreams {
		eps = append(eps, ociclient.Endpoint{Host: u.Host, URL: u.Endpoint, Insecure: u.Insecure})
	}
	return eps
}

// WatchReload reloads the configuration from path on every signal on hup
// until ctx ends.
func (s *Server) WatchReload(ctx context.Context, path string, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := s.Reload(path); err != nil {
				s.log.Error("configuration reload refused; the running configuration stays", zap.String("config", path), zap.Error(err))
			}
		}
	}
}

// Reload applies what can change while serving, without touching
// connections: rules, credential sets, upstream endpoints, the storage
// quota and watermarks, and pins. (Control settings, the storage driver
// and the cluster need a restart.) Requests already running finish with the
// configuration they started with. A file that does not load or validate
// changes nothing. Settings that need a restart are named in the log.
func (s *Server) Reload(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	set, err := cfg.RuleSet()
	if err != nil {
		return err
	}
	creds, err := cfg.Credentials()
	if err != nil {
		return err
	}
	if err := checkPushedRepos(set, s.index); err != nil {
		return err
	}
	// The rules go through the control module, which serves them together
	// with its registry's and refuses a set that conflicts; the rest was
	// validated by Load.
	if err := s.ctl.svc.SetBase(set.Rules(), creds); err != nil {
		return err
	}
	if err := s.up.SetEndpoints(endpoints(cfg)); err != nil {
		return fmt.Errorf("upstreams: %w", err) // not reached: Load checks endpoints alike
	}
	if err := s.ops.col.SetPolicy(cfg.EvictPolicy()); err != nil {
		return err // not reached: Load checks the policy
	}
	var restart []string
	old := s.cfg
	if cfg.Listen != old.Listen {
		restart = append(restart, "listen")
	}
	if cfg.Storage.Dir != old.Storage.Dir {
		restart = append(restart, "storage.dir")
	}
	if cfg.Storage.Driver != old.Storage.Driver || !reflect.DeepEqual(cfg.Storage.Azure, old.Storage.Azure) || cfg.Storage.SpoolBytes != old.Storage.SpoolBytes {
		restart = append(restart, "storage.driver, storage.azure, storage.spoolBytes")
	}
	if !reflect.DeepEqual(cfg.Cluster, old.Cluster) {
		restart = append(restart, "cluster")
	}
	if cfg.Storage.GCInterval != old.Storage.GCInterval {
		restart = append(restart, "storage.gcInterval")
	}
	if cfg.Log != old.Log {
		restart = append(restart, "log")
	}
	if !reflect.DeepEqual(cfg.Cache, old.Cache) {
		restart = append(restart, "cache")
	}
	for _, c := range []struct {
		name string
		a, b any
	}{{"control", cfg.Control, old.Control}, {"auth", cfg.Auth, old.Auth}, {"tls", cfg.TLS, old.TLS}, {"push", cfg.Push, old.Push}, {"http", cfg.HTTP, old.HTTP}} {
		if !reflect.DeepEqual(c.a, c.b) {
			restart = append(restart, c.name)
		}
	}
	s.cfg = cfg
	level, msg := zap.InfoLevel, "configuration reloaded"
	if len(restart) > 0 {
		level, msg = zap.WarnLevel, "configuration reloaded; some settings need a restart"
	}
	s.log.Log(level, msg, zap.String("config", path), zap.Int("rules", set.Len()),
		zap.Int("upstreams", len(cfg.Upstreams)), zap.Int("pins", len(cfg.Pins)), zap.Int64("max_bytes", int64(cfg.Storage.MaxBytes)),
		zap.Strings("unchanged_until_restart", restart))
	return nil
}

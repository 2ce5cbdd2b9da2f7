package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock/airlock/upstream/mar"
)

// preflightTimeout bounds the checks of one registry.
const preflightTimeout = time.Minute

// regTarget is a registry under test, checked.
type regTarget struct {
	inst  *instance
	blobs map[string]int64 // digest → size: the distinct blobs of one node's pull
	size  int64            // their total size
	stats statsSource
}

// ping checks that inst answers GET /v2/ like a registry.
func ping(ctx context.Context, inst *instance) error {
	tr := &http.Transport{TLSClientConfig: inst.tlsConfig(), Proxy: http.ProxyFromEnvironment}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, inst.url+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		if errKind(err) == kindTLS {
			return fmt.Errorf("registry %s: TLS: %s (pass --ca FILE with the CA that signed its certificate)", inst.url, oneLine(err))
		}
		return fmt.Errorf("registry %s is unreachable: %s", inst.url, oneLine(err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry %s: GET /v2/ answered %s: not an OCI registry at this URL", inst.url, resp.Status)
	}
	return nil
}

// checkImages resolves each image's manifests on inst, as a node would
// (credentials, token flow, HEAD, GET, the platform's child), and returns
// the distinct blobs they list. Stop at the first image that fails when
// all is false.
func checkImages(ctx context.Context, inst *instance, set []image, all bool) (map[string]int64, error) {
	n := newNode(inst)
	defer n.close()
	blobs := map[string]int64{}
	for _, im := range set {
		_, m, err := n.resolveImage(ctx, im)
		if err != nil {
			return nil, imageError(inst, im, err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			blobs[d.Digest.String()] = d.Size
		}
		if !all {
			break
		}
	}
	return blobs, nil
}

// imageError says in one line why an image could not be resolved.
func imageError(inst *instance, im image, err error) error {
	creds := "no credentials"
	if inst.creds != nil {
		creds = inst.creds.String()
	}
	switch errKind(err) {
	case "HTTP 401":
		return fmt.Errorf("registry %s: 401 Unauthorized pulling %s with %s (docker login, --username/--password-env, or --acr-exchange): %s",
			inst.url, im.name, creds, oneLine(err))
	case "HTTP 403":
		return fmt.Errorf("registry %s: 403 Forbidden: %s may not pull %s%s: %s", inst.url, creds, inst.prefix, im.repo, oneLine(err))
	case "HTTP 404":
		return fmt.Errorf("image %s not found on %s (as %s%s:%s): %s", im.name, inst.url, inst.prefix, im.repo, im.ref, oneLine(err))
	case kindTLS:
		return fmt.Errorf("registry %s: TLS: %s (pass --ca FILE)", inst.url, oneLine(err))
	}
	return fmt.Errorf("image %s on %s: %s", im.name, inst.url, oneLine(err))
}

// oneLine flattens an error's message onto one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// preflight checks a registry before any load: it answers, the
// credentials are accepted, every image is there (for the platform). It
// finds where upstream counts can be read: marStats (the emulator behind
// it), the registry itself when it is the emulator, or its /metrics when
// it is airlock.
func preflight(ctx context.Context, inst *instance, set []image, auth *AuthOptions, marStats string) (*regTarget, error) {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	if err := ping(ctx, inst); err != nil {
		return nil, err
	}
	blobs, err := checkImages(ctx, inst, set, true)
	if err != nil {
		return nil, err
	}
	t := &regTarget{inst: inst, blobs: blobs}
	for _, s := range blobs {
		t.size += s
	}
	tr := &http.Transport{TLSClientConfig: inst.tlsConfig(), Proxy: http.ProxyFromEnvironment}
	t.stats.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	switch {
	case marStats != "":
		if _, err := mar.FetchStats(ctx, marStats); err != nil {
			return nil, fmt.Errorf("--mar-stats %s: %s", marStats, oneLine(err))
		}
		t.stats.marURL = marStats
	case isEmulator(ctx, t.stats.client, inst.url):
		t.stats.marURL = inst.url
	}
	t.stats.user, t.stats.pass = metricsCredentials(ctx, inst, auth)
	t.stats.metricsURL = inst.url + "/metrics"
	if m, err := t.stats.scrape(ctx); err != nil || len(m) == 0 {
		// Not airlock (no airlock_ counter after the checks above made
		// requests), or its metrics need an admin's credentials.
		t.stats.metricsURL = ""
	}
	return t, nil
}

// isEmulator reports whether url is the MAR emulator (it serves /_mar/stats).
func isEmulator(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_mar/stats", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st mar.Stats
	return resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st) == nil && st.Statuses != nil
}

// metricsCredentials are the Basic credentials for airlock's /metrics
// (an admin's): the flags', else a user and password from the Docker
// config; none for an ACR exchange or tokens.
func metricsCredentials(ctx context.Context, inst *instance, auth *AuthOptions) (user, pass string) {
	if u, p, ok := auth.basic(); ok {
		return u, p
	}
	sc, ok := inst.creds.(*staticCreds)
	if !ok {
		return "", ""
	}
	cfg, err := authn.Authorization(ctx, sc.auth)
	if err != nil || cfg.Username == "" || cfg.Password == "" {
		return "", ""
	}
	return cfg.Username, cfg.Password
}

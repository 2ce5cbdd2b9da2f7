package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// acrTokenUser is the user name ACR's credential provider gives containerd
// with a refresh token as the password (az acr login does the same).
const acrTokenUser = "00000000-0000-0000-0000-000000000000"

// AuthOptions say how nodes authenticate to registries the bench did not
// start, and which certificates they trust. Without a user or an ACR
// exchange, credentials come from the Docker config (docker login, and
// its credential helpers), as ggcr's default keychain finds them.
type AuthOptions struct {
	Username    string // with PasswordEnv: Basic credentials (docker login style)
	PasswordEnv string // name of the environment variable holding the password
	// ACRExchange makes each node exchange its credentials at
	// /oauth2/exchange for a refresh token and pull with it, as AKS's ACR
	// credential provider does (then /oauth2/token per repository).
	ACRExchange bool
	AADTokenEnv string // ACR exchange with an Azure AD access token from this variable (grant_type=access_token)
	CA          string // PEM file of certificates to trust on top of the system's
	Insecure    bool   // do not verify certificates
}

// credentials give a node its authenticator.
type credentials interface {
	// authenticator is called once per node; n's transport carries any
	// request it makes (so they are counted as the node's).
	authenticator(ctx context.Context, n *node) (authn.Authenticator, error)
	// String says which credentials these are, for messages.
	String() string
}

// secret reads the variable named by a --*-env flag.
func secret(flag, env string) (string, error) {
	if env == "" {
		return "", nil
	}
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return "", fmt.Errorf("%w: %s %s: the environment variable %s is empty or unset", ErrUsage, flag, env, env)
	}
	return v, nil
}

// validate checks the combination of flags.
func (a *AuthOptions) validate() error {
	switch {
	case a.Username != "" && a.PasswordEnv == "":
		return fmt.Errorf("%w: --username needs --password-env VAR (the variable holding the password)", ErrUsage)
	case a.PasswordEnv != "" && a.Username == "":
		return fmt.Errorf("%w: --password-env needs --username", ErrUsage)
	case a.AADTokenEnv != "" && !a.ACRExchange:
		return fmt.Errorf("%w: --aad-token-env is for --acr-exchange", ErrUsage)
	case a.ACRExchange && a.Username == "" && a.AADTokenEnv == "":
		return fmt.Errorf("%w: --acr-exchange needs --username/--password-env or --aad-token-env", ErrUsage)
	}
	if _, err := secret("--password-env", a.PasswordEnv); err != nil {
		return err
	}
	_, err := secret("--aad-token-env", a.AADTokenEnv)
	return err
}

// credentialsFor returns how nodes authenticate to reg.
func (a *AuthOptions) credentialsFor(reg name.Registry, keychain authn.Keychain) (credentials, error) {
	password, err := secret("--password-env", a.PasswordEnv)
	if err != nil {
		return nil, err
	}
	aad, err := secret("--aad-token-env", a.AADTokenEnv)
	if err != nil {
		return nil, err
	}
	switch {
	case a.ACRExchange:
		return &acrExchange{username: a.Username, password: password, aadToken: aad}, nil
	case a.Username != "":
		return &staticCreds{auth: &authn.Basic{Username: a.Username, Password: password}, desc: "user " + a.Username}, nil
	}
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	auth, err := keychain.Resolve(reg)
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if auth == authn.Anonymous {
		return &staticCreds{auth: auth, desc: "no credentials (anonymous)"}, nil
	}
	return &staticCreds{auth: auth, desc: "the Docker config's credentials for " + reg.RegistryStr()}, nil
}

// basic returns the user and password given on the command line, for
// endpoints that take Basic credentials (airlock's /metrics).
func (a *AuthOptions) basic() (user, password string, ok bool) {
	p, err := secret("--password-env", a.PasswordEnv)
	return a.Username, p, err == nil && a.Username != "" && p != ""
}

// tlsConfig returns the TLS settings, nil for the defaults.
func (a *AuthOptions) tlsConfig() (*tls.Config, error) {
	if a.CA == "" && !a.Insecure {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: a.Insecure} //nolint:gosec // --insecure asks for it
	if a.CA != "" {
		pem, err := os.ReadFile(a.CA)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", a.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// staticCreds are the same credentials for every node.
type staticCreds struct {
	auth authn.Authenticator
	desc string
}

func (s *staticCreds) authenticator(context.Context, *node) (authn.Authenticator, error) {
	return s.auth, nil
}

func (s *staticCreds) String() string { return s.desc }

// acrExchange is ACR's token flow: POST /oauth2/exchange with the node's
// credentials for a refresh token, then pull with it (ggcr then asks
// /oauth2/token for an access token per repository, grant_type=refresh_token).
type acrExchange struct {
	username, password, aadToken string
}

func (a *acrExchange) String() string {
	if a.aadToken != "" {
		return "an ACR token exchange of an Azure AD token"
	}
	return "an ACR token exchange as " + a.username
}

func (a *acrExchange) authenticator(ctx context.Context, n *node) (authn.Authenticator, error) {
	// The token's audience is the service the registry's challenge names
	// (ACR: its login server).
	reg, err := name.NewRegistry(n.inst.host(), n.inst.nameOpts()...)
	if err != nil {
		return nil, err
	}
	service := n.inst.host()
	err = n.retry(ctx, func(*instance) error {
		ch, err := transport.Ping(ctx, reg, n.base)
		if err == nil && ch.Parameters["service"] != "" {
			service = ch.Parameters["service"]
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ACR token exchange: %w", err)
	}
	form := url.Values{"service": {service}}
	if a.aadToken != "" {
		form.Set("grant_type", "access_token")
		form.Set("access_token", a.aadToken)
	} else {
		form.Set("grant_type", "password")
		form.Set("username", a.username)
		form.Set("password", a.password)
	}
	var rt string
	err = n.retry(ctx, func(*instance) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.inst.url+"/oauth2/exchange", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := (&http.Client{Transport: n.base}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			return err
		}
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.RefreshToken == "" {
			return fmt.Errorf("no refresh_token in the answer (%v)", err)
		}
		rt = body.RefreshToken
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ACR token exchange at %s/oauth2/exchange: %w", n.inst.url, err)
	}
	return authn.FromConfig(authn.AuthConfig{Username: acrTokenUser, IdentityToken: rt}), nil
}

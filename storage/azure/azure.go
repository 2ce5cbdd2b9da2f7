// Package azure reaches one Azure Blob Storage container through the
// official SDK: client construction from airlock's storage.azure settings
// (shared key or workload identity), the container created if missing,
// service answers mapped to sentinel errors, conditional writes of small
// records, blob leases for fencing, and a count of every request
// (WithMetrics). Content and metadata stores build on it; it imports
// nothing of airlock.
package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/prometheus/client_golang/prometheus"
)

// Config says where the container is and how to authenticate: the keys
// under storage.azure. With none of AccountKey, AccountKeyEnv and
// AccountKeyFile set, the client authenticates with workload identity
// (azidentity's DefaultAzureCredential).
type Config struct {
	// ServiceURL is the account's blob endpoint; default
	// https://<AccountName>.blob.core.windows.net. Azurite's is path style,
	// http://127.0.0.1:10000/devstoreaccount1.
	ServiceURL string `yaml:"serviceURL"`
	// AccountName is the storage account; needed for a shared key and for
	// the default ServiceURL.
	AccountName string `yaml:"accountName"`
	// AccountKey is the account's shared key (base64) itself.
	AccountKey string `yaml:"accountKey"`
	// AccountKeyEnv names an environment variable holding the key.
	AccountKeyEnv string `yaml:"accountKeyEnv"`
	// AccountKeyFile names a file holding the key (a mounted Secret).
	AccountKeyFile string `yaml:"accountKeyFile"`
	// Container is the container's name; it is created if missing.
	Container string `yaml:"container"`
}

// Validate checks the settings without contacting the service.
func (c Config) Validate() error {
	if c.AccountName == "" && c.ServiceURL == "" {
		return errors.New("azure: accountName or serviceURL is required")
	}
	if _, err := c.serviceURL(); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{c.AccountKey, c.AccountKeyEnv, c.AccountKeyFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("azure: set at most one of accountKey, accountKeyEnv and accountKeyFile")
	}
	if n == 1 && c.AccountName == "" {
		return errors.New("azure: a shared key needs accountName")
	}
	return validContainer(c.Container)
}

// serviceURL is the blob endpoint, checked to be an absolute http(s) URL.
func (c Config) serviceURL() (string, error) {
	s := c.ServiceURL
	if s == "" {
		s = "https://" + c.AccountName + ".blob.core.windows.net"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("azure: serviceURL %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("azure: serviceURL %q: want http(s)://host[/account] without query", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}

// validContainer applies the service's naming rules: 3 to 63 lowercase
// letters, digits and single hyphens, starting and ending with a letter or
// digit.
func validContainer(name string) error {
	bad := len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--")
	for i := 0; i < len(name) && !bad; i++ {
		c := name[i]
		bad = !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
	}
	if bad {
		return fmt.Errorf("azure: container %q: want 3-63 lowercase letters, digits and single hyphens, not starting or ending with a hyphen", name)
	}
	return nil
}

// key returns the shared key from wherever the settings put it, or "" for
// workload identity. A named variable or file that is empty is an error,
// never a silent fall back to another identity.
func (c Config) key(lookupEnv func(string) (string, bool)) (string, error) {
	switch {
	case c.AccountKey != "":
		return c.AccountKey, nil
	case c.AccountKeyEnv != "":
		v, _ := lookupEnv(c.AccountKeyEnv)
		if v = strings.TrimSpace(v); v == "" {
			return "", fmt.Errorf("azure: accountKeyEnv: environment variable %s is empty or unset", c.AccountKeyEnv)
		}
		return v, nil
	case c.AccountKeyFile != "":
		b, err := os.ReadFile(c.AccountKeyFile)
		if err != nil {
			return "", fmt.Errorf("azure: accountKeyFile: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("azure: accountKeyFile %s is empty", c.AccountKeyFile)
		}
		return v, nil
	}
	return "", nil
}

// Option changes how Open builds the client.
type Option func(*options)

type options struct {
	transport  policy.Transporter
	credential azcore.TokenCredential
	lookupEnv  func(string) (string, bool)
	retry      *policy.RetryOptions
	metrics    prometheus.Registerer
}

// WithTransport sends the client's requests through t (an *http.Client
// will do), e.g. to count them in a test.
func WithTransport(t policy.Transporter) Option { return func(o *options) { o.transport = t } }

// WithCredential uses cred instead of DefaultAzureCredential when the
// settings name no shared key.
func WithCredential(cred azcore.TokenCredential) Option {
	return func(o *options) { o.credential = cred }
}

// WithLookupEnv replaces os.LookupEnv for accountKeyEnv.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = f }
}

// WithRetry replaces the SDK's retry policy (tries, delays, timeouts).
func WithRetry(r policy.RetryOptions) Option { return func(o *options) { o.retry = &r } }

// Container is one blob container of a storage account. It is safe for
// concurrent use.
type Container struct {
	client *container.Client
	name   string
}

// Open builds the client for cfg and creates the container if it does not
// exist yet. It fails if the service cannot be reached or refuses the
// credential.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Container, error) {
	c, err := New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Ensure(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// New builds the client for cfg without contacting the service (Ensure
// does): for a replica that starts before its storage is reachable.
func New(cfg Config, opts ...Option) (*Container, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{lookupEnv: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	svc, _ := cfg.serviceURL()
	ctrURL := runtime.JoinPaths(svc, cfg.Container)
	copts := &container.ClientOptions{}
	if o.transport != nil {
		copts.Transport = o.transport
	}
	if o.retry != nil {
		copts.Retry = *o.retry
	}
	if o.metrics != nil {
		u, err := url.Parse(ctrURL)
		if err != nil {
			return nil, fmt.Errorf("azure: container URL %q: %w", ctrURL, err)
		}
		count, err := newCountRequests(o.metrics, u.Path)
		if err != nil {
			return nil, err
		}
		copts.PerRetryPolicies = append(copts.PerRetryPolicies, count)
	}
	key, err := cfg.key(o.lookupEnv)
	if err != nil {
		return nil, err
	}
	var client *container.Client
	if key != "" {
		cred, err := container.NewSharedKeyCredential(cfg.AccountName, key)
		if err != nil {
			return nil, fmt.Errorf("azure: account key of %s: %w", cfg.AccountName, err)
		}
		client, err = container.NewClientWithSharedKeyCredential(ctrURL, cred, copts)
		if err != nil {
			return nil, fmt.Errorf("azure: %w", err)
		}
	} else {
		cred := o.credential
		if cred == nil {
			cred, err = azidentity.NewDefaultAzureCredential(nil)
			if err != nil {
				return nil, fmt.Errorf("azure: no account key set and no workload identity: %w", err)
			}
		}
		client, err = container.NewClient(ctrURL, cred, copts)
		if err != nil {
			return nil, fmt.Errorf("azure: %w", err)
		}
	}
	return &Container{client: client, name: cfg.Container}, nil
}

// Ensure creates the container unless it exists. It asks first, so an
// identity allowed to use but not to create containers works with an
// existing one.
func (c *Container) Ensure(ctx context.Context) error {
	_, err := c.client.GetProperties(ctx, nil)
	if err == nil {
		return nil
	}
	if err = Classify("get container", c.name, err); !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err = c.client.Create(ctx, nil)
	if err = Classify("create container", c.name, err); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}

// Name is the container's name.
func (c *Container) Name() string { return c.name }

// Client is the SDK's client of the container, for what this package does
// not wrap; classify its errors with Classify.
func (c *Container) Client() *container.Client { return c.client }

package bench

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/airlock/airlock/internal/sleep"
)

// maxStorageLatency bounds --storage-latency: a round trip to a storage
// account in the cluster's region takes milliseconds, not seconds.
const maxStorageLatency = time.Second

// delayedAccount puts a proxy in front of acc's blob endpoint that holds
// each request for d before it forwards it, as the round trip to Azure
// Blob Storage would; the replicas reach acc through it. The shared key
// signs the account's paths, not the host, so the proxy changes nothing
// else. Stop stops the proxy, then acc.
func delayedAccount(acc *Account, d time.Duration) (*Account, error) {
	u, err := url.Parse(acc.ServiceURL)
	if err != nil {
		return nil, fmt.Errorf("storage account URL %q: %w", acc.ServiceURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("storage latency proxy: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	target := &url.URL{Scheme: u.Scheme, Host: u.Host}
	srv := &http.Server{
		Handler: &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
			Transport:     delayed{d: d, next: tr},
			FlushInterval: -1,
			// A replica killed mid-request (the failover scenario) is no
			// news for the bench's output.
			ErrorLog: log.New(io.Discard, "", 0),
		},
		ReadHeaderTimeout: 30 * time.Second,
	}
	// Serve returns at Stop; a proxy that fails before shows as the
	// replicas' storage errors.
	go func() { _ = srv.Serve(ln) }()
	out := *acc
	out.ServiceURL = (&url.URL{Scheme: "http", Host: ln.Addr().String(), Path: u.Path}).String()
	out.Stop = func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
		acc.Stop()
	}
	return &out, nil
}

// delayed holds each request for d before sending it.
type delayed struct {
	d    time.Duration
	next http.RoundTripper
}

func (t delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := sleep.For(r.Context(), t.d); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(r)
}

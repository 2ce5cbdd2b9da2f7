package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/airlock/airlock/deploy"
)

// ErrUnreachable means no admin API answered at the client's address.
var ErrUnreachable = errors.New("admin API unreachable")

// Client calls the admin API of a running airlock.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the server at base (http://host:port).
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// Local returns a client that calls h in this process (offline edits of
// the state, with no server running).
func Local(h http.Handler) *Client {
	return NewClient("http://local", &http.Client{Transport: handlerTransport{h}})
}

// Do sends in (if not nil) as JSON to path under Prefix and decodes the
// answer into out (if not nil). An error answer comes back as a
// *deploy.Error wrapping ErrInvalid, ErrNotFound or ErrConflict.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("%w at %s: HTTP %d from %s %s (is this an airlock server?)", ErrUnreachable, c.base, resp.StatusCode, method, path)
		}
		kind := kindOf(resp.StatusCode)
		if !errors.Is(kind, deploy.ErrInvalid) && !errors.Is(kind, deploy.ErrNotFound) && !errors.Is(kind, deploy.ErrConflict) {
			return fmt.Errorf("%s: %s (HTTP %d)", eb.Error.Code, eb.Error.Message, resp.StatusCode)
		}
		return deploy.NewError(kind, eb.Error.Code, "%s", eb.Error.Message)
	}
	if out != nil && len(b) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], b...)
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("admin API %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

// handlerTransport answers requests by calling a handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	t.h.ServeHTTP(rec, r)
	return &http.Response{
		Status: http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()),
		Request: r,
	}, nil
}

// recorder is a minimal http.ResponseWriter that keeps the answer.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

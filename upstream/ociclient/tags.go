package ociclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/airlock/airlock/upstream"
)

// Bounds of one tag listing, against an upstream that pages forever or
// sends more than any repository has.
const (
	maxTagPages = 1000
	maxTagBytes = 16 << 20 // of JSON, all pages together
)

// Tags implements upstream.Client. It asks for the first page without n
// (the upstream picks its page size) and follows each Link rel="next" on
// the same host, under the repository's tags/list path.
func (c *Client) Tags(ctx context.Context, r upstream.Repo) ([]string, error) {
	var all []string
	budget := int64(maxTagBytes)
	next := "/tags/list"
	for page := 0; next != ""; page++ {
		if page == maxTagPages {
			return nil, c.wrapErr(r, 0, fmt.Errorf("tag listing has more than %d pages", maxTagPages))
		}
		tags, nx, n, err := c.tagsPage(ctx, r, next, budget)
		if err != nil {
			return nil, err
		}
		budget -= n
		all = append(all, tags...)
		if nx == next {
			return nil, c.wrapErr(r, 0, fmt.Errorf("tag listing: next page %q is the page just read", nx))
		}
		next = nx
	}
	return all, nil
}

// tagsPage reads one page: its tags, the path of the next page ("" for
// the last) and how many bytes it took.
func (c *Client) tagsPage(ctx context.Context, r upstream.Repo, path string, budget int64) ([]string, string, int64, error) {
	resp, err := c.do(ctx, r, http.MethodGet, path, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", 0, c.statusErr(r, resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, budget+1))
	if err != nil {
		return nil, "", 0, c.wrapErr(r, 0, fmt.Errorf("read tag listing: %w", err))
	}
	if int64(len(body)) > budget {
		return nil, "", 0, c.wrapErr(r, resp.StatusCode, fmt.Errorf("tag listing is larger than %d bytes", maxTagBytes))
	}
	var l struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, "", 0, c.wrapErr(r, resp.StatusCode, fmt.Errorf("tag listing: %w", err))
	}
	next, err := nextPage(resp, r.Name)
	if err != nil {
		return nil, "", 0, c.wrapErr(r, resp.StatusCode, err)
	}
	return l.Tags, next, int64(len(body)), nil
}

// nextPage returns the path, relative to the repository's /v2/<name>, of
// the page a Link rel="next" header points at, or "" when there is none.
// The link is resolved against the request's URL and must stay on its host
// and under the repository's tags/list.
func nextPage(resp *http.Response, repo string) (string, error) {
	link := ""
	for _, v := range resp.Header.Values("Link") {
		for part := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(part, ";")
			target = strings.TrimSpace(target)
			if ok && strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") && relNext(params) {
				link = target[1 : len(target)-1]
			}
		}
	}
	if link == "" {
		return "", nil
	}
	u, err := resp.Request.URL.Parse(link)
	if err != nil {
		return "", fmt.Errorf("tag listing: bad Link %q: %w", link, err)
	}
	base := resp.Request.URL
	prefix := "/v2/" + repo
	if u.Scheme != base.Scheme || u.Host != base.Host || u.Path != prefix+"/tags/list" {
		return "", errors.New("tag listing: Link " + strings.ReplaceAll(link, "\n", " ") + " leaves the repository's tags/list on " + base.Host)
	}
	return strings.TrimPrefix(u.Path, prefix) + "?" + u.Query().Encode(), nil
}

// relNext reports whether Link parameters say rel="next" (or rel=next).
func relNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "rel") {
			for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(v), `"`)) {
				if strings.EqualFold(rel, "next") {
					return true
				}
			}
		}
	}
	return false
}

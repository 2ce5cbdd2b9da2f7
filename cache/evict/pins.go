package evict

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/airlock/airlock/cache/meta"
	"github.com/airlock/airlock/internal/ocierr"
	"github.com/airlock/airlock/reference"
)

// PinInfo is a pin as listed: from the configuration file or set at run
// time (by the control module, for a cluster's bootstrap images).
type PinInfo struct {
	Ref    string `json:"ref"`
	Source string `json:"source"` // "config" or "api"
	Owner  string `json:"owner,omitempty"`
}

// Pin keeps refs ("repo:tag" or "repo@digest") from eviction until
// unpinned; owner (optional) groups them. Pins set this way are stored in
// the index and survive restarts.
func (c *Collector) Pin(ctx context.Context, refs []string, owner string) error {
	ps := make([]meta.Pin, 0, len(refs))
	for _, s := range refs {
		r, err := reference.ParseLocal(s)
		if err != nil {
			return err
		}
		ps = append(ps, meta.Pin{Ref: r.String(), Owner: owner, Added: c.now()})
	}
	return c.index.PutPins(ctx, ps)
}

// Unpin removes run-time pins: those of refs, and all of owner's when owner
// is not empty. Pins from the configuration stay. It returns how many it
// removed.
func (c *Collector) Unpin(ctx context.Context, refs []string, owner string) (int, error) {
	norm := make([]string, 0, len(refs))
	for _, s := range refs {
		r, err := reference.ParseLocal(s)
		if err != nil {
			return 0, err
		}
		norm = append(norm, r.String())
	}
	return c.index.DeletePins(ctx, norm, owner)
}

// Pins lists every pin, sorted by reference.
func (c *Collector) Pins(ctx context.Context) ([]PinInfo, error) {
	var out []PinInfo
	for _, r := range c.policy.Load().pins {
		out = append(out, PinInfo{Ref: r.String(), Source: "config"})
	}
	stored, err := c.index.Pins(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range stored {
		out = append(out, PinInfo{Ref: p.Ref, Source: "api", Owner: p.Owner})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// pinRequest is the body of POST and DELETE on the pins API.
type pinRequest struct {
	Refs  []string `json:"refs"`
	Owner string   `json:"owner,omitempty"`
}

// PinsHandler serves the pins API (mounted at /admin/pins):
//
//	GET    -> 200 {"pins":[{"ref","source","owner"}]}
//	POST   {"refs":[...],"owner":"..."} -> 204: pin
//	DELETE {"refs":[...],"owner":"..."} -> 200 {"removed":N}: unpin refs, and
//	       all of owner's pins when owner is set
//
// Errors are OCI error JSON: NAME_INVALID for a bad reference, UNKNOWN (400)
// for a bad body.
func (c *Collector) PinsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			ps, err := c.Pins(r.Context())
			if err != nil {
				writeError(w, r, http.StatusInternalServerError, errcode.ErrorCodeUnknown, err)
				return
			}
			if ps == nil {
				ps = []PinInfo{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"pins": ps})
		case http.MethodPost, http.MethodDelete:
			var req pinRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeUnknown, fmt.Errorf("body: %w", err))
				return
			}
			if r.Method == http.MethodPost {
				if len(req.Refs) == 0 {
					writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeUnknown, fmt.Errorf("refs is empty"))
					return
				}
				if err := c.Pin(r.Context(), req.Refs, req.Owner); err != nil {
					writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeNameInvalid, err)
					return
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			n, err := c.Unpin(r.Context(), req.Refs, req.Owner)
			if err != nil {
				writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeNameInvalid, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]int{"removed": n})
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			writeError(w, r, http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported, fmt.Errorf("method %s", r.Method))
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with OCI error JSON.
func writeError(w http.ResponseWriter, r *http.Request, status int, code errcode.ErrorCode, err error) {
	_ = ocierr.Write(w, r, status, code.WithMessage(err.Error()))
}

// SyncPins makes the run-time pins whose owner starts with prefix exactly
// want (owner -> references): the control module's deploy.Pinner. An
// owner's set is replaced as a whole when it changed. deploy.Pinner has no
// context: the index is written on a background one.
func (c *Collector) SyncPins(prefix string, want map[string][]string) error {
	ctx := context.Background()
	stored, err := c.index.Pins(ctx)
	if err != nil {
		return err
	}
	have := map[string][]string{}
	for _, p := range stored {
		if strings.HasPrefix(p.Owner, prefix) {
			have[p.Owner] = append(have[p.Owner], p.Ref)
		}
	}
	for owner, refs := range want {
		norm := make([]string, 0, len(refs))
		for _, s := range refs {
			r, err := reference.ParseLocal(s)
			if err != nil {
				return err
			}
			norm = append(norm, r.String())
		}
		want[owner] = norm
	}
	for owner, refs := range have {
		if w, ok := want[owner]; !ok || !sameRefs(refs, w) {
			if _, err := c.Unpin(ctx, nil, owner); err != nil {
				return err
			}
		}
	}
	for owner, refs := range want {
		if h, ok := have[owner]; ok && sameRefs(h, refs) {
			continue
		}
		if err := c.Pin(ctx, refs, owner); err != nil {
			return err
		}
	}
	return nil
}

func sameRefs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

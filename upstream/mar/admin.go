package mar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/airlock/airlock/upstream/mar/fault"
)

// admin serves the emulator's control API on the registry listener. It needs
// no token, is not counted in Stats and is never subject to faults.
//
//	GET    /_mar/stats           Stats JSON
//	POST   /_mar/stats/reset     zero the counters (also DELETE /_mar/stats)
//	GET    /_mar/faults          the faults with their counters
//	POST   /_mar/faults          add faults: a JSON fault object, a flag-syntax
//	                             string, or an array of either; returns them with ids
//	PUT    /_mar/faults          replace all faults (same body)
//	DELETE /_mar/faults          remove all faults
//	DELETE /_mar/faults/<id>     remove one fault
//	GET    /_mar/images          the catalog's images (repo, tag, digests, platforms)
func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/_mar/stats" && r.Method == http.MethodGet:
		adminJSON(w, http.StatusOK, s.Stats())
	case (p == "/_mar/stats/reset" && r.Method == http.MethodPost) || (p == "/_mar/stats" && r.Method == http.MethodDelete):
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case p == "/_mar/faults" && r.Method == http.MethodGet:
		adminJSON(w, http.StatusOK, s.faults.List())
	case p == "/_mar/faults" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		fs, err := decodeFaults(r.Body)
		if err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if r.Method == http.MethodPut {
			fs, err = s.faults.Replace(fs...)
		} else {
			fs, err = s.faults.Add(fs...)
		}
		if err != nil {
			adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.log.Info("faults changed via API", zap.String("method", r.Method), zap.Int("count", len(fs)))
		adminJSON(w, http.StatusOK, fs)
	case p == "/_mar/faults" && r.Method == http.MethodDelete:
		s.faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, "/_mar/faults/") && r.Method == http.MethodDelete:
		id, err := strconv.Atoi(strings.TrimPrefix(p, "/_mar/faults/"))
		if err != nil || !s.faults.Remove(id) {
			adminJSON(w, http.StatusNotFound, map[string]string{"error": "no such fault"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case p == "/_mar/images" && r.Method == http.MethodGet:
		adminJSON(w, http.StatusOK, s.cat.Images())
	default:
		adminJSON(w, http.StatusNotFound, map[string]string{"error": "unknown admin endpoint " + r.Method + " " + r.URL.Path})
	}
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeFaults reads a fault, a flag-syntax string, or an array of either.
func decodeFaults(body io.Reader) ([]fault.Fault, error) {
	raw, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	items := []json.RawMessage{raw}
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("faults: %w", err)
		}
	}
	var out []fault.Fault
	for _, it := range items {
		var spec string
		if json.Unmarshal(it, &spec) == nil {
			f, err := fault.Parse(spec)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		var f fault.Fault
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("fault %s: %w", it, err)
		}
		out = append(out, f)
	}
	return out, nil
}

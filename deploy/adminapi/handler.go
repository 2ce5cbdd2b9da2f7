// Package adminapi is the control module's HTTP admin API: JSON in and
// out, under /admin/v1/, over a *deploy.Service; and a client for it.
package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/airlock/airlock/deploy"
	"go.uber.org/zap"
)

// Prefix is where the API is mounted.
const Prefix = "/admin/v1"

// maxBody bounds a request body.
const maxBody = 1 << 20

// handlerFunc answers one route: a status and a value to encode, or an error.
type handlerFunc func(r *http.Request) (int, any, error)

// New returns the admin API over svc.
func New(svc *deploy.Service, log *zap.Logger) http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn handlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			status, v, err := fn(r)
			if err != nil {
				writeError(w, log, err)
				return
			}
			writeJSON(w, status, v)
		})
	}
	routes(h, svc)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, log, deploy.NewError(deploy.ErrNotFound, deploy.CodeNotFound, "no admin API route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// decode reads a JSON body into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return deploy.NewError(deploy.ErrInvalid, deploy.CodeInvalidParameter, "request body: %v", err)
	}
	return nil
}

// decoded is a handler that decodes the request body (decode) into a T
// and passes it to f; a body that does not decode is the client's error.
func decoded[T any](f func(r *http.Request, v T) (int, any, error)) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		var v T
		if err := decode(r, &v); err != nil {
			return 0, nil, err
		}
		return f(r, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// errorBody is the error answer, in ARM's shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, log *zap.Logger, err error) {
	var body errorBody
	status := http.StatusInternalServerError
	var de *deploy.Error
	switch {
	case errors.As(err, &de):
		body.Error.Code, body.Error.Message = de.Code, de.Message
	default:
		body.Error.Code, body.Error.Message = "InternalError", err.Error()
	}
	switch {
	case errors.Is(err, deploy.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, deploy.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, deploy.ErrConflict):
		status = http.StatusConflict
	default:
		log.Error("admin API", zap.Error(err))
	}
	writeJSON(w, status, body)
}

// kindOf maps an answer's status back to the sentinel error.
func kindOf(status int) error {
	switch status {
	case http.StatusBadRequest:
		return deploy.ErrInvalid
	case http.StatusNotFound:
		return deploy.ErrNotFound
	case http.StatusConflict:
		return deploy.ErrConflict
	}
	return fmt.Errorf("admin API: HTTP %d", status)
}

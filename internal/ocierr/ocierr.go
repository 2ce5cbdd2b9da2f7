// Package ocierr writes OCI distribution error responses: the JSON envelope
// {"errors":[{"code","message","detail"}]} of the distribution spec, with
// the codes of distribution's registry/api/errcode. Every airlock server
// (the registry, its admin routes, the MAR emulator) answers errors through
// Write.
package ocierr

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Write answers r with errs. The status is the first error's code's status
// when status is 0. An answer to HEAD has the status and headers but no
// body. It returns the error of writing the body, if any.
func Write(w http.ResponseWriter, r *http.Request, status int, errs ...errcode.Error) error {
	if status == 0 {
		status = http.StatusInternalServerError
		if len(errs) > 0 {
			status = errs[0].Code.Descriptor().HTTPStatusCode
		}
	}
	if errs == nil {
		errs = []errcode.Error{}
	}
	body, err := json.Marshal(envelope{Errors: errs})
	if err != nil {
		return err // a detail that does not marshal: nothing was written
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(body)
	return err
}

// envelope is the spec's error body.
type envelope struct {
	Errors []errcode.Error `json:"errors"`
}

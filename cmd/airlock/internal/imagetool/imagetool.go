// Package imagetool is airlock's image tools, behind the warm and bundle
// commands: image lists pulled through a running airlock (its cache rules
// map each upstream reference to the local repository that fetches it) or
// straight from the registries (bundle export --direct, where the
// configuration's upstream endpoint overrides apply), pre-warming with
// pins, and air-gap bundles exported from and imported into airlock's
// storage.
package imagetool

import (
	"fmt"
	"io"
	"os"

	"github.com/airlock/airlock/upstream/images"
)

// UsageError is bad command-line input.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// readList reads an image list file ("-": stdin).
func readList(path string, stdin io.Reader) ([]string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	refs, err := images.ParseList(r)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("%s lists no images", path)
	}
	return refs, nil
}

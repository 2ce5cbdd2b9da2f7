package config

import (
	"strings"
	"testing"
)

func TestStorageAndPins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body    string
		want    int64
		wantErr string
	}{
		{"storage:\n  maxBytes: 1000000\n", 1_000_000, ""},
		{"storage:\n  maxBytes: 85GiB\n", 85 << 30, ""},
		{"storage:\n  maxBytes: 1.5 GB\n", 1_500_000_000, ""},
		{"storage:\n  maxBytes: 500Mi\n", 500 << 20, ""},
		{"storage:\n  maxBytes: lots\n", 0, "is not a number of bytes"},
		{"storage:\n  maxBytes: -1\n", 0, "is not a number of bytes"},
		{"storage:\n  maxBytes: 1GB\n  highWatermark: 0.7\n  lowWatermark: 0.8\n", 0, "watermarks must satisfy"},
		{"storage:\n  maxBytes: 1GB\n  highWatermark: 1.5\n", 0, "watermarks must satisfy"},
		{"storage:\n  gcInterval: soon\n", 0, "is not a duration"},
		{"pins:\n  - aks-managed-repository/oss/kubernetes/pause:3.10\n  - team/app@sha256:" + strings.Repeat("a", 64) + "\n", 0, ""},
		{"pins:\n  - aks-managed-repository/oss/kubernetes/pause\n", 0, "pins[0]: reference \"aks-managed-repository/oss/kubernetes/pause\" needs a :tag or an @digest"},
		{"pins:\n  - Bad/Repo:1\n", 0, "not a valid repository name"},
	}
	for _, c := range cases {
		cfg, err := Parse([]byte(c.body))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v, want %q", c.body, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.body, err)
			continue
		}
		if int64(cfg.Storage.MaxBytes) != c.want {
			t.Errorf("%q: maxBytes %d, want %d", c.body, cfg.Storage.MaxBytes, c.want)
		}
	}
}

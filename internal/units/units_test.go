package units

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"512", 512, false},
		{"10B", 10, false},
		{"64KiB", 64 << 10, false},
		{"16MiB", 16 << 20, false},
		{"85GiB", 85 << 30, false},
		{"1TiB", 1 << 40, false},
		{"500Mi", 500 << 20, false},
		{"1.5M", 3 << 19, false}, // the MAR emulator's flags: K, M, G are binary, as in dd
		{"64K", 64 << 10, false},
		{"2GB", 2e9, false},
		{"1.5 GB", 1_500_000_000, false},
		{" 500MB ", 500_000_000, false},
		{"1000000", 1_000_000, false},
		{"", 0, true},
		{"-1", 0, true},
		{"abc", 0, true},
		{"lots", 0, true},
		{"5PB", 0, true},
		{"NaN", 0, true},
		{"1e30", 0, true},
		{"8388608TiB", 0, true}, // 2^63: one past the largest int64
	} {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "is not a number of bytes") {
			t.Errorf("ParseBytes(%q): error %q does not say what a size is", tc.in, err)
		}
	}
}

func TestDurationText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5m", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{" 250ms", 250 * time.Millisecond, ""},
		{"300", 0, `"300" is not a duration with a unit, like 30s, 5m or 1h30m`},
		{"soon", 0, `"soon" is not a duration`},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || time.Duration(d) != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.in, time.Duration(d), err, tc.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	type doc struct {
		TTL Duration `json:"ttl,omitempty"`
	}
	b, err := json.Marshal(doc{TTL: Duration(90 * time.Second)})
	if err != nil || string(b) != `{"ttl":"1m30s"}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	if b, _ := json.Marshal(doc{}); string(b) != `{}` {
		t.Errorf("zero duration written as %s, want omitted", b)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"ttl":"2m"}`), &d); err != nil || d.TTL != Duration(2*time.Minute) {
		t.Errorf("unmarshal: %v, %v", time.Duration(d.TTL), err)
	}
	for _, bad := range []string{`{"ttl":300}`, `{"ttl":"x"}`, `{"ttl":true}`} {
		err := json.Unmarshal([]byte(bad), &d)
		if err == nil || !strings.Contains(err.Error(), DurationForm) || strings.Contains(err.Error(), "units.") {
			t.Errorf("%s: err %v; want one naming the form, no Go type", bad, err)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	t.Parallel()
	var b ByteSize
	if err := b.UnmarshalText([]byte("2KiB")); err != nil || b != 2048 {
		t.Fatalf("2KiB: %d, %v", b, err)
	}
	out, _ := b.MarshalText()
	var again ByteSize
	if err := again.UnmarshalText(out); err != nil || again != b {
		t.Errorf("round trip %s: %d, %v", out, again, err)
	}
	if err := b.UnmarshalText([]byte("big")); err == nil {
		t.Error("accepted big")
	}
}

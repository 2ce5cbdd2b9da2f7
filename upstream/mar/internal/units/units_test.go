package units

import "testing"

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"512", 512, false},
		{"64KiB", 64 << 10, false},
		{"16MiB", 16 << 20, false},
		{"1.5M", 3 << 19, false},
		{"2GB", 2e9, false},
		{"10B", 10, false},
		{"", 0, true},
		{"-1", 0, true},
		{"abc", 0, true},
		{"1TiB", 0, true},
	} {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

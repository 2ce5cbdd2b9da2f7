// Package units holds the two units airlock reads from people: durations
// ("5m", "1h30m") and byte sizes ("500MB", "100GiB"). It is a leaf: it
// imports nothing of airlock, so the product, the control module and the MAR
// emulator all parse them the same way.
package units

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as text: "5m", "30s", "1h30m" in YAML
// and as a JSON string ("5m0s" when written). The zero value is no duration.
type Duration time.Duration

// DurationForm says how a duration is written, for error messages.
const DurationForm = "a duration with a unit, like 30s, 5m or 1h30m"

// ParseDuration parses a duration as a person writes it.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not %s", s, DurationForm)
	}
	return Duration(v), nil
}

// String is the time.Duration form, e.g. "5m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (YAML scalars).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalJSON accepts a string only: a bare number would silently mean
// nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s must be a string: %s", b, DurationForm)
	}
	return d.UnmarshalText([]byte(s))
}

// ByteSize is a size in bytes, written as an integer or a number with a
// unit (see ParseBytes).
type ByteSize int64

// SizeForm says how a size is written, for error messages.
const SizeForm = "a number of bytes, optionally with a unit (KB, MB, GB, TB; KiB, MiB, GiB, TiB)"

// sizeUnits are tried in order: longer suffixes first.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes parses a non-negative size: a number (fractions allowed) with
// an optional unit. KB, MB, GB and TB are powers of 1000; KiB, MiB, GiB,
// TiB (also written Ki, Mi, Gi, Ti, or K, M, G, T as in dd) are powers of
// 1024; B is bytes.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v*mult, 0) || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not %s", s, SizeForm)
	}
	return int64(v * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

// MarshalText writes the number of bytes.
func (b ByteSize) MarshalText() ([]byte, error) { return strconv.AppendInt(nil, int64(b), 10), nil }

package config

import (
	"fmt"
	"strings"
)

// hint is what follows "unknown key" for name in a section with the given
// keys: the key probably meant, else the one section the key belongs to,
// else the keys the section takes.
func (k *checker) hint(name string, keys []string) string {
	if s := nearest(name, keys); s != "" {
		return fmt.Sprintf("; did you mean %s?", s)
	}
	if where := k.schema[strings.ToLower(name)]; len(where) == 1 {
		section := strings.ReplaceAll(parentKey(where[0]), "[]", "")
		field := where[0][strings.LastIndexAny(where[0], ".]")+1:]
		if section == "" {
			return fmt.Sprintf("; %s is a top-level key", field)
		}
		return fmt.Sprintf("; %s belongs under %s", field, section)
	}
	return fmt.Sprintf("; the keys here are %s", strings.Join(keys, ", "))
}

// nearest returns the candidate that name most likely misspells: equal but
// for case, a close edit (by optimal string alignment distance), or one
// containing the other; "" when none is close.
func nearest(name string, candidates []string) string {
	low := strings.ToLower(name)
	for _, c := range candidates {
		if strings.ToLower(c) == low {
			return c
		}
	}
	best, bestDist := "", 0
	limit := 1
	if len(low) >= 5 {
		limit = 2
	}
	for _, c := range candidates {
		if d := editDistance(low, strings.ToLower(c)); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	if len(low) >= 3 {
		for _, c := range candidates {
			if lc := strings.ToLower(c); strings.Contains(lc, low) || strings.Contains(low, lc) {
				return c
			}
		}
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent letters.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxProblems bounds the problems counted in one error.
const maxProblems = 20

// pos is where a setting's value is written.
type pos struct{ line, col int }

// positions maps each setting's key (as "rules[0].tagTTL") to its value.
type positions map[string]pos

// place sets e's file and position from its key, or from the nearest
// enclosing key written in the file.
func (p positions) place(e *Error, file string) {
	if e.Key == "" || e.Line > 0 {
		return
	}
	e.File = file
	for k := e.Key; k != ""; k = parentKey(k) {
		if at, ok := p[k]; ok {
			e.Line, e.Column = at.line, at.col
			return
		}
	}
}

// parentKey strips the last element of a key: "rules[0].source" ->
// "rules[0]" -> "rules" -> "".
func parentKey(k string) string {
	if i := strings.LastIndexAny(k, ".["); i >= 0 {
		return k[:i]
	}
	return ""
}

var syntaxRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode expands ${NAME} in the values of the first YAML document of b from
// env, checks it against the shape of c, then decodes it. A problem is an
// *Error with the file, position, key and what is expected: never a Go
// type name.
func decode(file string, b []byte, c *Config, env func(string) (string, bool)) (positions, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		e := &Error{File: file, Msg: "the YAML does not parse: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := syntaxRE.FindStringSubmatch(err.Error()); m != nil {
			fmt.Sscan(m[1], &e.Line)
			e.Msg = "the YAML does not parse: " + m[2]
		}
		if e.File == "" && e.Line == 0 {
			e.Msg = "config: " + e.Msg
		}
		return nil, e
	}
	k := checker{file: file, pos: positions{}, schema: schemaOf(reflect.TypeFor[Config]())}
	if len(doc.Content) > 0 {
		k.expand(doc.Content[0], "", env)
		k.value(doc.Content[0], reflect.TypeFor[Config](), "", nil)
	}
	if len(k.problems) > 0 {
		e := k.problems[0]
		if n := len(k.problems) - 1; n > 0 {
			more := fmt.Sprint(n)
			if len(k.problems) > maxProblems {
				more += " or more"
			}
			e.Msg += fmt.Sprintf(" (and %s other problem%s)", more, plural(n))
		}
		return nil, e
	}
	if len(doc.Content) > 0 {
		if err := doc.Decode(c); err != nil {
			// The check above mirrors the decoder; this is a safety net.
			return nil, &Error{File: file, Msg: strings.ReplaceAll(err.Error(), "\n", "; ")}
		}
	}
	return k.pos, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checker walks a YAML tree alongside the Go type it decodes into.
type checker struct {
	file     string
	pos      positions
	schema   map[string][]string // lower-case key -> where it belongs
	problems []*Error
}

func (k *checker) problem(n *yaml.Node, key, format string, a ...any) {
	if len(k.problems) > maxProblems {
		return
	}
	k.problems = append(k.problems, &Error{File: k.file, Line: n.Line, Column: n.Column, Key: key, Msg: fmt.Sprintf(format, a...)})
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value checks node n, to be decoded into a t, at key. A section or a
// list is placed at its key (keyNode), a single value where it is written.
func (k *checker) value(n *yaml.Node, t reflect.Type, key string, keyNode *yaml.Node) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if key != "" {
		at := n
		if keyNode != nil && n.Kind != yaml.ScalarNode {
			at = keyNode
		}
		k.pos[key] = pos{at.Line, at.Column}
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the default
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		k.scalar(n, t, key)
	case t.Kind() == reflect.Struct:
		k.mapping(n, t, key)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			k.problem(n, key, "must be a list (one item per line, each starting with \"- \")")
			return
		}
		for i, item := range n.Content {
			k.value(item, t.Elem(), fmt.Sprintf("%s[%d]", key, i), nil)
		}
	default:
		k.scalar(n, t, key)
	}
}

// mapping checks a section: every key known, none twice.
func (k *checker) mapping(n *yaml.Node, t reflect.Type, key string) {
	fields := fieldsOf(t)
	if n.Kind != yaml.MappingNode {
		if key == "" {
			k.problem(n, "", "the file must be a section of keys (%s)", strings.Join(names(fields), ", "))
			return
		}
		k.problem(n, key, "must be a section of keys (%s)", strings.Join(names(fields), ", "))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.ShortTag() == "!!merge" { // "<<: *anchor" merges a section
			k.value(vn, t, key, nil)
			continue
		}
		child := joinKey(key, kn.Value)
		if line, dup := seen[kn.Value]; dup {
			k.problem(kn, child, "is set twice (first on line %d)", line)
			continue
		}
		seen[kn.Value] = kn.Line
		ft, ok := fieldType(fields, kn.Value)
		if !ok {
			k.problem(kn, child, "unknown key%s", k.hint(kn.Value, names(fields)))
			continue
		}
		k.value(vn, ft, child, kn)
	}
}

// scalar checks a single value by decoding it on its own.
func (k *checker) scalar(n *yaml.Node, t reflect.Type, key string) {
	form := formOf(t)
	if n.Kind != yaml.ScalarNode {
		k.problem(n, key, "must be %s, not a %s", form, kindName(n))
		return
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if err != nil {
			k.problem(n, key, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.ShortTag() != "!!int" {
			err = errors.New("not an integer")
		}
	case reflect.Float32, reflect.Float64:
		if tag := n.ShortTag(); tag != "!!int" && tag != "!!float" {
			err = errors.New("not a number")
		}
	}
	if err != nil {
		quoted := ""
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			quoted = " (remove the quotes)"
		}
		k.problem(n, key, "%q is not %s%s", n.Value, form, quoted)
	}
}

// formOf says, for a person, what a value of t is written as.
func formOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a section of keys"
	}
	return "a single value"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "section of keys"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// field is a key of a section and the type its value decodes into.
type field struct {
	name string
	t    reflect.Type
}

// fieldsOf lists the YAML keys of a struct, in order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{name, f.Type})
	}
	return out
}

func fieldType(fs []field, name string) (reflect.Type, bool) {
	for _, f := range fs {
		if f.name == name {
			return f.t, true
		}
	}
	return nil, false
}

func names(fs []field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// schemaOf indexes every key of the file by its lower-case name: where it
// belongs ("storage.maxBytes", "rules[].tagTTL").
func schemaOf(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				prefix += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return
		}
		for _, f := range fieldsOf(t) {
			full := joinKey(prefix, f.name)
			out[strings.ToLower(f.name)] = append(out[strings.ToLower(f.name)], full)
			walk(f.t, full)
		}
	}
	walk(t, "")
	return out
}

package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// expand replaces ${NAME} in every value of the tree under n by the
// environment variable NAME (keys are left alone); $${ is a literal ${.
// In Kubernetes this puts what only the pod knows (its IP from the
// downward API) into the file a ConfigMap holds. A variable that is not
// set is a problem at the value naming it.
func (k *checker) expand(n *yaml.Node, key string, env func(string) (string, bool)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			k.expand(c, key, env)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			k.expand(c, fmt.Sprintf("%s[%d]", key, i), env)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k.expand(n.Content[i+1], joinKey(key, n.Content[i].Value), env)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, err := expandValue(n.Value, env)
		if err != nil {
			k.problem(n, key, "%v", err)
			return
		}
		n.Value = v
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = "" // a plain value is typed by what it now says ("${PORT}" -> 5000)
		}
	}
	// An alias is expanded where its anchor is written, once.
}

// expandValue expands one value's ${NAME} references.
func expandValue(s string, env func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: ${ without a closing } (write $${ for a literal ${)", s[i:])
		}
		name := s[i+2 : i+end]
		if !envName(name) {
			return "", fmt.Errorf("${%s}: want ${NAME}, NAME of letters, digits and _ (write $${ for a literal ${)", name)
		}
		v, ok := env(name)
		if !ok {
			return "", fmt.Errorf("${%s}: environment variable %s is not set", name, name)
		}
		b.WriteString(s[:i] + v)
		s = s[i+end+1:]
	}
}

// envName reports whether s is a variable name: a letter or _, then
// letters, digits and _.
func envName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

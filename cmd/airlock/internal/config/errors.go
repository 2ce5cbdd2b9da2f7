package config

import (
	"fmt"
	"strings"
)

// Error is a configuration that cannot be used; the command exits with 2.
//
// Errors of a file name the File, the Line and Column (1-based) and the Key
// (the setting's path, as "rules[0].tagTTL"); Msg then says what is wrong
// and what is expected. An Error with only Msg is printed as Msg.
type Error struct {
	File         string
	Line, Column int
	Key          string
	Msg          string
}

func (e *Error) Error() string {
	if e.Key == "" && e.Line == 0 && e.File == "" {
		return e.Msg
	}
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.Line > 0 && e.File != "" && e.Column > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.Line > 0 && e.File != "":
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// errorf is an Error that is only a message.
func errorf(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// keyErr is an Error about the setting at key; Load adds where it is.
func keyErr(key, format string, a ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, a...)}
}

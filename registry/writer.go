package registry

import (
	"context"
	"net/http"
	"strconv"
)

// gateWriter passes a response body through but holds its final byte until
// wait reports the blob verified.
type gateWriter struct {
	http.ResponseWriter
	ctx       context.Context
	wait      func(context.Context) error
	remaining int64 // body bytes still to write; -1 until known
	started   bool
	done      bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if !g.started {
		g.started = true
		g.remaining = -1
		if n, err := strconv.ParseInt(g.Header().Get("Content-Length"), 10, 64); err == nil {
			g.remaining = n
		}
	}
	if g.remaining < 0 {
		// Length unknown: nothing may go out before verification.
		if err := g.wait(g.ctx); err != nil {
			return 0, err
		}
		return g.ResponseWriter.Write(p)
	}
	if int64(len(p)) < g.remaining {
		n, err := g.ResponseWriter.Write(p)
		g.remaining -= int64(n)
		return n, err
	}
	// p holds the final byte: send the rest, then wait for the verdict.
	p = p[:g.remaining]
	n, err := g.ResponseWriter.Write(p[:len(p)-1])
	g.remaining -= int64(n)
	if err != nil {
		return n, err
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err := g.wait(g.ctx); err != nil {
		return n, err
	}
	m, err := g.ResponseWriter.Write(p[len(p)-1:])
	g.remaining -= int64(m)
	g.done = g.remaining == 0
	return n + m, err
}

// short reports whether a body was started but not completed.
func (g *gateWriter) short() bool { return g.started && !g.done && g.remaining != 0 }

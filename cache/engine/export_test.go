package engine

import "context"

// What the behaviour tests (package engine_test) reach inside the engine.

// OnMiss makes every request of e call fn at its missed points (hooks):
// a test stops a request there to force one interleaving.
func OnMiss(e *Engine, fn func(ctx context.Context, kind string)) { e.hooks.missed = fn }

// PassWindow is how far a pass-through's fastest reader may run ahead of
// its slowest.
const PassWindow = passWindow

// Errors a pass-through's readers see.
var (
	ErrSlowReader = errSlowReader
	ErrFillFailed = errFillFailed
)

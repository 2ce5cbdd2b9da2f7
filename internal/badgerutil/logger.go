package badgerutil

import (
	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Logger routes badger's logs to log, named "badger". Badger's info
// chatter (compactions, value log replays) goes to debug level.
func Logger(log *zap.Logger) badger.Logger {
	return logger{log.Named("badger").Sugar()}
}

// Options are the options every airlock database starts from: badger's
// defaults for dir, logs through log, no expvar metrics, and everything in
// memory when inMemory (tests). Callers add their own tuning.
func Options(dir string, log *zap.Logger, inMemory bool) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithLogger(Logger(log)).
		WithMetricsEnabled(false)
	if inMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	}
	return opts
}

type logger struct{ s *zap.SugaredLogger }

func (l logger) Errorf(f string, a ...any)   { l.s.Errorf(f, a...) }
func (l logger) Warningf(f string, a ...any) { l.s.Warnf(f, a...) }
func (l logger) Infof(f string, a ...any)    { l.s.Debugf(f, a...) }
func (l logger) Debugf(f string, a ...any)   { l.s.Debugf(f, a...) }

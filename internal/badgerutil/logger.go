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

type logger struct{ s *zap.SugaredLogger }

func (l logger) Errorf(f string, a ...any)   { l.s.Errorf(f, a...) }
func (l logger) Warningf(f string, a ...any) { l.s.Warnf(f, a...) }
func (l logger) Infof(f string, a ...any)    { l.s.Debugf(f, a...) }
func (l logger) Debugf(f string, a ...any)   { l.s.Debugf(f, a...) }

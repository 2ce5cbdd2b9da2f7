package badgerutil

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Badger's errors and warnings keep their level; its info chatter is
// demoted to debug, so an info-level log stays quiet.
func TestLoggerLevels(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := Logger(zap.New(core))
	l.Errorf("e %d", 1)
	l.Warningf("w %d", 2)
	l.Infof("i %d", 3)
	l.Debugf("d %d", 4)
	want := []struct {
		level zapcore.Level
		msg   string
	}{{zapcore.ErrorLevel, "e 1"}, {zapcore.WarnLevel, "w 2"}, {zapcore.DebugLevel, "i 3"}, {zapcore.DebugLevel, "d 4"}}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg || got[i].LoggerName != "badger" {
			t.Errorf("entry %d: %v %q (%s), want %v %q (badger)", i, got[i].Level, got[i].Message, got[i].LoggerName, w.level, w.msg)
		}
	}
}

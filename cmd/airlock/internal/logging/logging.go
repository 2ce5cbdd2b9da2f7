// Package logging builds the zap loggers of airlock's commands: the
// server's from its configuration, and a console logger for the lab, the
// emulator and the bench.
package logging

import (
	"io"

	"github.com/airlock/airlock/cmd/airlock/internal/config"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds the logger the log section describes (level, json or
// console), on standard error.
func New(c config.Log) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.DisableStacktrace = true
	return zc.Build()
}

// Console writes console-encoded logs at level and above to w.
func Console(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}

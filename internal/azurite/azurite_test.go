package azurite

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A program that is not Azurite, or exits at once, is an error naming
// what happened, never a hang (internal/azuritetest and the lab test the
// real one).
func TestStartFails(t *testing.T) {
	t.Parallel()
	if _, err := Start(filepath.Join(t.TempDir(), "missing"), t.TempDir(), "0", io.Discard, time.Second); err == nil || !strings.Contains(err.Error(), "start") {
		t.Fatalf("a missing executable: %v", err)
	}
	script := filepath.Join(t.TempDir(), "azurite-blob")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho not azurite\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(script, t.TempDir(), "0", io.Discard, 10*time.Second); err == nil || !strings.Contains(err.Error(), "exited before it listened") {
		t.Fatalf("a program that exits: %v", err)
	}
	silent := filepath.Join(t.TempDir(), "azurite-blob")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(silent, t.TempDir(), "0", io.Discard, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not listen") {
		t.Fatalf("a program that never listens: %v", err)
	}
}

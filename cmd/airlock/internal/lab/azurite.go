package lab

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/airlock/airlock/internal/azurite"
)

// The lab's replicas share a storage account emulated by Azurite (the
// Azure Storage emulator), run from the repository's bin/tools/azurite,
// its data in the lab's directory so the cache persists across runs.

// azuriteInstall is the command that installs Azurite.
const azuriteInstall = "scripts/install-tools.sh azurite"

// FindAzurite returns the azurite-blob executable: tools/azurite beside
// the airlock binary (bin/airlock), or bin/tools/azurite in the working
// directory or one above it (the repository), or azurite-blob on PATH.
// The lab and the bench's airlock-cluster target run it.
func FindAzurite() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is not on PATH (Azurite runs on Node.js): install it with %s", azuriteInstall)
	}
	rel := filepath.Join("tools", "azurite", "node_modules", ".bin", "azurite-blob")
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, "bin"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range dirs {
		if p := filepath.Join(d, rel); isFile(p) {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("azurite is not installed in bin/tools/azurite: install it with %s", azuriteInstall)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// startAzurite runs Azurite's blob service on a free loopback port with
// its data in dir, its output to logOut, until Stop. It dies with the lab
// (SIGKILL included).
func startAzurite(dir string, logOut io.Writer) (*azurite.Process, error) {
	bin, err := FindAzurite()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return azurite.Start(bin, dir, "0", logOut, 30*time.Second)
}

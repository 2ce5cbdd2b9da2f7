package lab

import (
	"io"
	"os"
	"time"

	"github.com/airlock/airlock/internal/azurite"
)

// The lab's replicas share a storage account emulated by Azurite (the
// Azure Storage emulator), run from the repository's bin/tools/azurite,
// its data in the lab's directory so the cache persists across runs.

// FindAzurite returns the azurite-blob executable (azurite.Find). The lab
// and the bench's airlock-cluster target run it.
func FindAzurite() (string, error) { return azurite.Find() }

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

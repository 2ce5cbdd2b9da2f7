package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// The lab's replicas share a storage account emulated by Azurite (the
// Azure Storage emulator), run from the repository's bin/tools/azurite,
// its data in the lab's directory so the cache persists across runs.

// The development account every Azurite accepts; its key is public
// (documented for the emulator) and protects nothing.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	// azuriteInstall is the command that installs Azurite.
	azuriteInstall = "scripts/install-tools.sh azurite"
)

// azuriteListening is the line Azurite prints once its blob service
// accepts connections, with the port the kernel chose.
var azuriteListening = regexp.MustCompile(`successfully listens on (http://127\.0\.0\.1:[0-9]+)`)

// azurite is the lab's running Azurite blob service.
type azurite struct {
	cmd    *exec.Cmd
	url    string // the account's blob endpoint
	exited chan struct{}
}

// findAzurite returns the azurite-blob executable: tools/azurite beside
// the airlock binary (bin/airlock), or bin/tools/azurite in the working
// directory or one above it (the repository), or azurite-blob on PATH.
func findAzurite() (string, error) {
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
// its data in dir, until stop. It dies with the lab (SIGKILL included).
func startAzurite(ctx context.Context, dir string, logOut io.Writer) (*azurite, error) {
	bin, err := findAzurite()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
		"--blobHost", "127.0.0.1", "--blobPort", "0", "--location", dir)
	cmd.SysProcAttr = dieWithParent()
	cmd.Stderr = logOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start azurite: %w", err)
	}
	a := &azurite{cmd: cmd, exited: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := azuriteListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); close(a.exited) }()
	select {
	case base := <-urls:
		a.url = base + "/" + azuriteAccount
		if err := dialable(strings.TrimPrefix(base, "http://"), 30*time.Second); err != nil {
			a.stop()
			return nil, err
		}
		return a, nil
	case <-a.exited:
		return nil, errors.New("azurite exited before it listened (its output is above)")
	case <-time.After(30 * time.Second):
		a.stop()
		return nil, errors.New("azurite did not listen within 30 s")
	case <-ctx.Done():
		a.stop()
		return nil, ctx.Err()
	}
}

// dialable waits until a TCP connection to addr succeeds.
func dialable(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azurite at %s does not accept connections: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends Azurite (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (a *azurite) stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(5 * time.Second):
		a.cmd.Process.Kill()
		<-a.exited
	}
}

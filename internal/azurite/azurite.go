// Package azurite runs Azurite's blob service (the Azure Storage
// emulator) as a child process: on a loopback port, its data in a
// directory, until Stop. The lab runs one for its replicas; azuritetest
// runs them for tests.
package azurite

import (
	"bufio"
	"context"
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

// The development account every Azurite accepts. The key is public
// (documented by Azure for the emulator) and protects nothing.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// listening is the line Azurite prints once its blob service accepts
// connections; with --blobPort 0 it names the port the kernel chose.
var listening = regexp.MustCompile(`successfully listens on (http://127\.0\.0\.1:[0-9]+)`)

// Process is a running Azurite blob service.
type Process struct {
	// Base is http://127.0.0.1:<port>; the account's endpoint is
	// Base/AccountName (ServiceURL).
	Base   string
	cancel context.CancelFunc
	exited chan error
}

// Install is the command that installs Azurite (and Node.js when missing).
const Install = "scripts/install-tools.sh azurite"

// BinEnv names the environment variable that overrides where
// azurite-blob is found.
const BinEnv = "AIRLOCK_AZURITE_BLOB"

// Find returns the azurite-blob executable: $AIRLOCK_AZURITE_BLOB, else
// tools/azurite beside the running executable (bin/airlock), or
// bin/tools/azurite in the working directory or one above it (the
// repository), else azurite-blob on PATH. Its error says what is missing
// (Node.js or Azurite) and how to install it.
func Find() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is not on PATH (Azurite runs on Node.js): install it with %s", Install)
	}
	if p := os.Getenv(BinEnv); p != "" {
		return p, nil
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
	return "", fmt.Errorf("azurite is not installed in bin/tools/azurite: install it with %s", Install)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// Start runs the azurite-blob executable bin on 127.0.0.1:port ("0": a
// free one) with its data in dir, copying its output to out, and returns
// once it accepts connections, or an error after timeout. It dies with
// this process (SIGKILL included, on Linux), and a Ctrl-C at the terminal
// does not reach it: Stop stops it.
func Start(bin, dir, port string, out io.Writer, timeout time.Duration) (*Process, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
		"--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second // then SIGKILL
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("azurite: start %s: %w", bin, err)
	}
	p := &Process{cancel: cancel, exited: make(chan error, 1)}
	urls := make(chan string, 1)
	go scan(stdout, out, urls)
	go func() { p.exited <- cmd.Wait(); close(p.exited) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.Base = <-urls:
	case err := <-p.exited:
		cancel()
		return nil, fmt.Errorf("azurite exited before it listened: %v", err)
	case <-timer.C:
		p.Stop()
		return nil, fmt.Errorf("azurite did not listen within %s", timeout)
	}
	if err := waitDial(strings.TrimPrefix(p.Base, "http://"), timeout); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// ServiceURL is the development account's blob endpoint, path style.
func (p *Process) ServiceURL() string { return p.Base + "/" + AccountName }

// Port is the port Azurite listens on.
func (p *Process) Port() string { return p.Base[strings.LastIndexByte(p.Base, ':')+1:] }

// Stop ends Azurite (SIGTERM, SIGKILL after 5 s) and waits for it.
func (p *Process) Stop() {
	p.cancel()
	<-p.exited
}

// scan copies Azurite's stdout to out and sends the blob endpoint once it
// is announced.
func scan(r io.Reader, out io.Writer, urls chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if m := listening.FindStringSubmatch(line); m != nil && !sent {
			urls <- m[1]
			sent = true
		}
	}
}

// waitDial waits until a TCP connection to addr succeeds.
func waitDial(addr string, limit time.Duration) error {
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

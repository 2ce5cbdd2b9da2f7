package labnode

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/airlock/airlock/internal/polltest"
)

// Running tells this program's live processes from a zombie and from
// another program that may have been given a gone process's pid.
func TestRunning(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	if !Running(os.Getpid()) {
		t.Error("this process is not running")
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	if Running(other.Process.Pid) {
		t.Error("sleep (another program) counts as this program running")
	}
	// A child of this program that exited and was not reaped: a zombie.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	zombie := exec.Command(self, "-test.run=^$")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	polltest.Until(t, 10*time.Second, "an exited, unreaped child stops counting as running", func() bool {
		return !Running(zombie.Process.Pid)
	})
}

// The pull line a person copies is one shell word per argument.
func TestCtrLine(t *testing.T) {
	d := &Containerd{ns: "airlock-lab-1-node1", ctrBin: "ctr", socket: "/tmp/a b/containerd.sock"}
	got := d.CtrLine("images", "pull", "--hosts-dir", "/x/it's", "mcr.microsoft.com/oss/kubernetes/pause:3.10")
	want := `ip netns exec airlock-lab-1-node1 ctr --address '/tmp/a b/containerd.sock' images pull --hosts-dir '/x/it'\''s' mcr.microsoft.com/oss/kubernetes/pause:3.10`
	if got != want {
		t.Errorf("CtrLine:\n%s\nwant\n%s", got, want)
	}
}

package devstack_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamscore/streamscore/devstack"
)

// TestServersDieWithTheirTestBinary: a test binary that panics or is killed
// must not leave its private stack running. The test re-runs itself as a
// child that starts a stack (toxiproxy only, it starts fast) and hangs; the
// parent kills the child with SIGKILL and checks the server is gone.
func TestServersDieWithTheirTestBinary(t *testing.T) {
	if os.Getenv("DEVSTACK_CHILD") == "1" {
		root, err := devstack.FindRoot(".")
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		st, err := devstack.Up(context.Background(), devstack.Config{Root: root, Dir: t.TempDir(), Services: []devstack.Service{devstack.Toxiproxy}, DieWithParent: true})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println("PID", st.Procs[0].PID)
		time.Sleep(time.Minute) // killed by the parent long before
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("starts a server")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithTheirTestBinary$")
	cmd.Env = append(os.Environ(), "DEVSTACK_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERR") {
			t.Fatal(line)
		}
		if rest, ok := strings.CutPrefix(line, "PID "); ok {
			pid, _ = strconv.Atoi(rest)
			break
		}
	}
	if pid == 0 {
		t.Fatal("the child never reported its server")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("server %d not running while the child lives: %v", pid, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !running(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("server %d still runs after its test binary was killed", pid)
}

// running reports whether pid is alive and not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports, and Go cannot call
// sysconf(_SC_CLK_TCK) without cgo.
const clockTicks = 100

// process is a child that the benchmark started and must stop.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// startProcess starts bin with args and env added to the benchmark's own
// environment, logging its output to dir/name.log.
func startProcess(dir, name, bin string, args []string, env []string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logFile.Close()
	return &process{name: name, cmd: cmd, log: logPath}, nil
}

// pid returns the child's process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits up to five seconds and then kills the child.
func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// tail returns the last lines of the child's log, for error messages.
func (p *process) tail() string {
	raw, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until addr accepts TCP connections or p exits.
func waitPort(p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if p.cmd.ProcessState != nil || !alive(p.pid()) {
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s:\n%s", p.name, addr, timeout, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z'
}

// procStat is the part of /proc/PID/stat the benchmark reads.
type procStat struct {
	state byte
	ppid  int
	// cpu is user plus system time.
	cpu time.Duration
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may contain spaces and parentheses; fields after
	// the last ")" are fixed.
	s := string(raw)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, errors.New("malformed /proc stat of pid " + strconv.Itoa(pid))
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return procStat{}, errors.New("short /proc stat of pid " + strconv.Itoa(pid))
	}
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return procStat{
		state: fields[0][0],
		ppid:  ppid,
		cpu:   time.Duration(utime+stime) * time.Second / clockTicks,
	}, nil
}

// cpuOf returns the summed CPU time of pids and of their direct children,
// which covers nginx's workers under its master.
func cpuOf(pids []int) time.Duration {
	want := map[int]bool{}
	for _, pid := range pids {
		want[pid] = true
	}
	var total time.Duration
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if want[pid] || want[st.ppid] {
			total += st.cpu
		}
	}
	return total
}

// rssOf returns the resident set size of pid from /proc/PID/status.
func rssOf(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of pid %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// readCalls returns the read system calls pid has made, from /proc/PID/io.
// redis-server reads a readable client socket once per event loop pass, so
// the growth estimates the round trips clients made, however many
// pipelined commands each carried.
func readCalls(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no syscr in /proc/%d/io", pid)
}

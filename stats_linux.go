package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// stats reads what the running sandbox uses: its cgroup's counters, and
// its eth0's from its network namespace (/proc/PID/net/dev of its PID 1).
func (x instanceSys) stats() (*Stats, error) {
	if !x.running() {
		return nil, ErrClosed
	}
	u, err := x.r.cg.usage()
	if err != nil {
		return nil, err
	}
	now, procs, err := x.r.cg.now()
	if err != nil {
		return nil, err
	}
	st := &Stats{Memory: now, MemoryPeak: u.memoryPeak, CPU: u.cpu, Processes: procs}
	if x.r.bridge != nil {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(x.r.proc.PID) + "/net/dev")
		if err != nil || x.r.signal(0) != nil {
			return nil, ErrClosed // the PID's entry is the sandbox's only while it runs
		}
		st.RxBytes, st.TxBytes = ifaceBytes(b, "eth0")
	}
	return st, nil
}

// ifaceBytes returns the received and sent bytes of iface in the contents
// of a /proc/net/dev.
func ifaceBytes(dev []byte, iface string) (rx, tx uint64) {
	sc := bufio.NewScanner(bytes.NewReader(dev))
	for sc.Scan() {
		name, counters, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != iface {
			continue
		}
		f := strings.Fields(counters)
		if len(f) >= 9 {
			rx, _ = strconv.ParseUint(f[0], 10, 64)
			tx, _ = strconv.ParseUint(f[8], 10, 64)
		}
	}
	return rx, tx
}

// waitPort returns once a socket of the sandbox's network namespace
// listens on TCP port, read by the host from /proc/PID/net/tcp and tcp6 of
// its PID 1: nothing runs inside the sandbox to ask.
func (x instanceSys) waitPort(ctx context.Context, port int) error {
	want := fmt.Sprintf(":%04X ", port)
	delay := time.Millisecond
	for {
		if !x.running() {
			return ErrClosed
		}
		for _, table := range []string{"tcp", "tcp6"} {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(x.r.proc.PID) + "/net/" + table)
			if err != nil || x.r.signal(0) != nil {
				continue
			}
			if listens(b, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-x.r.exited:
			return ErrClosed
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// listens reports whether a /proc/net/tcp table holds a socket in LISTEN
// state (0A) whose local address ends in want (":PORT ").
func listens(table []byte, want string) bool {
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1]+" ", want) {
			return true
		}
	}
	return false
}

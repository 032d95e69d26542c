package netsetup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxkit/sandbox/internal/state"
)

// Lease files live in StateDir/<bridge>/ and are named
// "<ip>_<holderPID>_<holderStart>.lease", so that one directory read tells the
// allocator which addresses are taken and by which holder, without opening
// each file. The holder is the process that called Attach; the file holds a
// leaseRecord naming the host veth and the published ports as well.
//
// A lease is live while its holder runs (same PID and same start time), and
// Detach removes it. The sandbox's processes do not count: Attach runs before
// the sandbox exists, and the holder is what owns the port mappings and
// proxies pointing at the address. A lease whose holder is gone is stale and
// is reclaimed under the state lock: its mappings are deleted, then its veth,
// which takes the sandbox side with it, so the address is off the bridge
// even if some process the dead holder started still runs in the
// namespace; then the file.
const leaseSuffix = ".lease"

// leaseRecord is the content of a lease file.
type leaseRecord struct {
	IP      netip.Addr  `json:"ip"`
	Holder  state.Owner `json:"holder"`
	Veth    string      `json:"veth"`
	Ports   []Port      `json:"ports,omitempty"`
	Created time.Time   `json:"created"`
}

// leaseFileName returns the file name of the lease of ip held by holder.
func leaseFileName(ip netip.Addr, holder state.Owner) string {
	return fmt.Sprintf("%s_%d_%d%s", ip, holder.PID, holder.Start, leaseSuffix)
}

// parseLeaseFileName is the inverse of leaseFileName.
func parseLeaseFileName(name string) (netip.Addr, state.Owner, bool) {
	base, ok := strings.CutSuffix(name, leaseSuffix)
	if !ok {
		return netip.Addr{}, state.Owner{}, false
	}
	addr, holder, ok := strings.Cut(base, "_")
	if !ok {
		return netip.Addr{}, state.Owner{}, false
	}
	ip, err := netip.ParseAddr(addr)
	owner, ok := state.ParseOwner(holder, '_')
	if err != nil || !ok {
		return netip.Addr{}, state.Owner{}, false
	}
	return ip, owner, true
}

// lockState takes the exclusive state lock StateDir/lock, waiting until ctx
// ends. The lock serialises bridge creation, lease allocation and reclaiming
// across goroutines (each call opens its own file description) and processes.
// The lock file is never removed, so a waiter can never hold a lock on an
// unlinked file.
func lockState(ctx context.Context, stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// The lock is normally held for tens of microseconds (veths are made and
	// configured after it is released), so waiters poll often at first.
	delay := 20 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, &fs.PathError{Op: "flock", Path: path, Err: ctx.Err()}
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// leaseScan is what scanLeases found in a bridge's state directory.
type leaseScan struct {
	taken map[netip.Addr]bool // live leases
	stale []string            // file names of stale leases
}

// scanLeases classifies the leases in dir. self is the calling process,
// always alive. Preconditions: the state lock is held.
func scanLeases(dir string, self state.Owner) (leaseScan, error) {
	s := leaseScan{taken: make(map[netip.Addr]bool)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, nil
		}
		return s, err
	}
	holderAlive := map[state.Owner]bool{self: true}
	for _, e := range entries {
		ip, holder, ok := parseLeaseFileName(e.Name())
		if !ok {
			continue
		}
		alive, known := holderAlive[holder]
		if !known {
			alive = holder.Alive()
			holderAlive[holder] = alive
		}
		if alive {
			s.taken[ip] = true
		} else {
			s.stale = append(s.stale, e.Name())
		}
	}
	return s, nil
}

// readLease reads a lease file.
func readLease(path string) (leaseRecord, error) { return readJSON[leaseRecord](path) }

// readJSON reads a state file holding one JSON value.
func readJSON[T any](path string) (T, error) {
	var rec T
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, &fs.PathError{Op: "decode", Path: path, Err: err}
	}
	return rec, nil
}

// writeLease writes rec atomically (temporary file and rename) as dir/name.
func writeLease(dir, name string, rec leaseRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// pickAddress returns a free host address of subnet, excluding the network
// address, the gateway (first address) and the broadcast address. The search
// starts at a random offset so that a just-released address, whose old veth
// may still be disappearing with its namespace, is unlikely to be reused at
// once.
func pickAddress(subnet netip.Prefix, taken map[netip.Addr]bool) (netip.Addr, bool) {
	first := subnet.Addr().Next().Next() // after the gateway
	n := uint64(1)<<(32-subnet.Bits()) - 3
	start := rand.Uint64N(n)
	base := addrToU32(first)
	for i := uint64(0); i < n; i++ {
		a := u32ToAddr(base + uint32((start+i)%n))
		if !taken[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func addrToU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
)

// takeoverTurn takes "<map>.takeover.lock" for one -takeover: a second
// one started at the same instant gives up at once instead of binding
// beside the first, being steered to, and waiting -takeover-timeout for a
// lock the first now holds with every login it queued meanwhile.
func takeoverTurn(mapPath string) (*cdbwriter.Lock, error) {
	turn, err := cdbwriter.AcquireLock(mapPath + ".takeover")
	var held *cdbwriter.LockedError
	if errors.As(err, &held) {
		who := "another -takeover"
		if held.PID > 0 {
			who += " (process " + strconv.Itoa(held.PID) + ")"
		}
		return nil, fmt.Errorf("takeover: %s is already replacing the relaygate on %s — fix: let it finish; start -takeover again only if you meant to replace that one too", who, mapPath)
	}
	if err != nil {
		return nil, fmt.Errorf("takeover: %w", err)
	}
	return turn, nil
}

// takeOver is -takeover's second half: the listeners are bound beside the
// running relaygate's and the intake is reading, and this process holds
// the takeover turn (takeoverTurn). It steers new traffic to this
// process, stops the lock holder with SIGTERM (it reads what its sockets
// still hold, writes its journal and exits) and waits for the lock. With
// no holder it simply takes the lock.
func (d *Daemon) takeOver(ctx context.Context) (*cdbwriter.Lock, error) {
	var held *cdbwriter.LockedError
	lock, err := cdbwriter.AcquireLock(d.cfg.MapPath, d.cfg.StatePath)
	if !errors.As(err, &held) {
		if err == nil {
			d.log.Info().Msg("takeover: no relaygate held the map; starting as usual")
		}
		return lock, err
	}
	if held.PID <= 0 || held.PID == os.Getpid() {
		return nil, fmt.Errorf("takeover: %w (its process ID is not in the lock file, so -takeover cannot stop it)", err)
	}
	if name, ok := isRelaygate(held.PID); !ok {
		return nil, fmt.Errorf("takeover: %s is held by process %d, which is %q, not a relaygate: not signalling it", held.For, held.PID, name)
	}
	if err := d.recv.Steer(); err != nil {
		// Datagrams the kernel's hash still gives the old socket are read
		// by its drain; only what arrives in its last instant is at risk.
		d.log.Warn().Err(err).Msg("takeover: could not steer new traffic to this process; the old one drains its sockets before closing them")
	}
	start := time.Now()
	if err := syscall.Kill(held.PID, syscall.SIGTERM); err != nil {
		d.recv.Unsteer()
		return nil, fmt.Errorf("takeover: stop relaygate process %d: %w", held.PID, err)
	}
	d.log.Info().Int("pid", held.PID).Msg("takeover: receiving; asked the running relaygate to stop")
	deadline := time.NewTimer(d.cfg.TakeoverTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.recv.Unsteer()
			return nil, ctx.Err()
		case <-deadline.C:
			d.recv.Unsteer()
			return nil, fmt.Errorf("takeover: relaygate process %d, sent SIGTERM, still holds %s after -takeover-timeout %s", held.PID, held.For, d.cfg.TakeoverTimeout)
		case <-tick.C:
		}
		lock, err = cdbwriter.AcquireLock(d.cfg.MapPath, d.cfg.StatePath)
		var now *cdbwriter.LockedError
		if !errors.As(err, &now) {
			if err == nil {
				d.log.Info().Dur("waited", time.Since(start)).Msg("takeover: the previous relaygate has exited")
			}
			return lock, err
		}
		if now.PID > 0 && now.PID != held.PID {
			// Someone else (a relaygate started without -takeover) took
			// the map the moment it was free: waiting would only hold the
			// steered traffic until the timeout and lose it.
			d.recv.Unsteer()
			return nil, fmt.Errorf("takeover: relaygate process %d stopped, but process %d took %s first: %w", held.PID, now.PID, now.For, err)
		}
	}
}

// isRelaygate reports whether process pid runs a relaygate binary (its
// executable's or its argv[0]'s name begins "relaygate"), and its name: a
// PID in a lock file may have been reused by anything since.
func isRelaygate(pid int) (string, bool) {
	var names []string
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		names = append(names, filepath.Base(strings.TrimSuffix(exe, " (deleted)")))
	}
	if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
		arg0, _, _ := strings.Cut(string(cmd), "\x00")
		names = append(names, filepath.Base(arg0))
	}
	for _, n := range names {
		if strings.HasPrefix(n, "relaygate") {
			return n, true
		}
	}
	return strings.Join(names, " "), false
}

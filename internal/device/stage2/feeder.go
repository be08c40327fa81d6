package stage2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/watchdog"
)

// FeederFlag is the hidden flag of `balena-migrate stage2` that makes it the
// init-top step's watchdog feeder: its value is "EVERY,FOR" (Go durations)
// and the open watchdog is its file descriptor 3.
const FeederFlag = "watchdog-feeder"

// startFeeder starts the init-top feeder: a copy of this program that holds
// dev open and feeds it every interval until stage 2 takes the watchdog
// over, for budget at most. It goes on after the init-top step returns.
func startFeeder(dev *watchdog.Device, every, budget time.Duration, console io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start the watchdog feeder: %w", err)
	}
	cmd := exec.Command(self, "stage2", "--"+FeederFlag, every.String()+","+budget.String())
	cmd.ExtraFiles = []*os.File{dev.File()}
	// Only a real file outlives this process; a pipe's copier would not.
	if f, ok := console.(*os.File); ok {
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the watchdog feeder: %w", err)
	}
	return cmd.Process.Release()
}

// RunFeeder is the init-top feeder (FeederFlag): it feeds the watchdog on
// descriptor 3 every EVERY until SIGTERM (stage 2 taking over) or until FOR
// has passed, and then closes it still running.
func RunFeeder(ctx context.Context, spec string, console io.Writer) error {
	every, budget, err := parseFeederSpec(spec)
	if err != nil {
		return err
	}
	f := os.NewFile(3, watchdog.DefaultPath)
	if f == nil {
		return fmt.Errorf("--%s: no watchdog on descriptor 3", FeederFlag)
	}
	dev := watchdog.FromFile(f, watchdog.DefaultPath)
	log := NewLogger(console)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	end := time.NewTimer(budget)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := dev.Feed(); err != nil {
			log.Warnf("watchdog feeder: %v", err)
		}
		select {
		case <-stop:
			dev.Feed() // stage 2 starts from a full timeout
			return dev.Leave()
		case <-ctx.Done():
			return dev.Leave()
		case <-end.C:
			log.Warnf("watchdog: stage 2 did not take the watchdog over within WATCHDOG: no longer fed, it resets the machine")
			return dev.Leave()
		case <-tick.C:
		}
	}
}

func parseFeederSpec(spec string) (every, budget time.Duration, err error) {
	e, b, ok := strings.Cut(spec, ",")
	if ok {
		every, err = time.ParseDuration(e)
	}
	if ok && err == nil {
		budget, err = time.ParseDuration(b)
	}
	if !ok || err != nil || every <= 0 || budget <= 0 {
		return 0, 0, fmt.Errorf("--%s %q: want EVERY,FOR (durations)", FeederFlag, spec)
	}
	return every, budget, nil
}

// stopFeeder asks the init-top feeder, if one runs, to let the watchdog go.
// It closes the device without disarming it, so stage 2 opens it next.
func stopFeeder(log *Logger) {
	for _, pid := range feederPIDs("/proc") {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			log.Warnf("watchdog: stop the init-top feeder (pid %d): %v", pid, err)
			continue
		}
		log.Infof("watchdog: the init-top feeder (pid %d) hands the watchdog to stage 2", pid)
	}
}

// feederPIDs finds the processes running as the init-top feeder.
func feederPIDs(proc string) []int {
	ents, _ := os.ReadDir(proc)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(proc + "/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) > 2 && string(args[1]) == "stage2" && string(args[2]) == "--"+FeederFlag {
			out = append(out, pid)
		}
	}
	return out
}

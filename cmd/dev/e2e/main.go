// Command e2e migrates device VMs end to end (package internal/testenv/e2e)
// and prints the per-phase timing table; its last line is
// "e2e done=<n> expected=<n> wall_s=<seconds>". Exit 0 only when every
// device ended where it should. scripts/e2e builds and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/devvm"
	"github.com/fleetmig/balena-migrate/internal/testenv/e2e"
)

func main() {
	keep := flag.Bool("keep", false, "leave the run directory (VM disks, consoles, database, logs) for debugging")
	devices := flag.String("devices", joinKinds(e2e.Kinds), "comma-separated device kinds, one VM each")
	work := flag.String("work", "", "run directory (default: a new one under $TMPDIR)")
	timeout := flag.Duration("timeout", 40*time.Minute, "give up after this long")
	realAPI := flag.Bool("real-api", true, "run open-balena-api (scripts/test-setup.d/30-open-balena-api); --real-api=false runs the fake balena API instead")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "e2e: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	var kinds []e2e.Kind
	for _, s := range strings.Split(*devices, ",") {
		k, err := e2e.ParseKind(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: --devices: %v\n", err)
			os.Exit(2)
		}
		kinds = append(kinds, k)
	}
	repo, err := devvm.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	// Ctrl-C and SIGTERM end the run; Run's clean-up still happens.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := e2e.Run(ctx, e2e.Options{Repo: repo, Work: *work, Keep: *keep, Kinds: kinds, Timeout: *timeout, Out: os.Stdout,
		RealAPI: *realAPI})
	if res != nil && res.Devices != nil {
		res.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if res != nil && res.Devices == nil {
			fmt.Printf("e2e done=0 expected=%d wall_s=0\n", len(kinds))
		}
		os.Exit(1)
	}
	if res.Done != res.Expected {
		os.Exit(1)
	}
}

func joinKinds(ks []e2e.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

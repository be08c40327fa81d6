// Command fleet-sim runs the product on a simulated fleet on this machine
// (see internal/fleetsim). scripts/demo and scripts/bench-fleet call it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/fleetsim"
)

func main() {
	o := fleetsim.Options{Out: os.Stdout}
	flag.StringVar(&o.Bin, "bin", "", "directory with the built binaries")
	flag.StringVar(&o.Repo, "repo", ".", "repository root")
	flag.IntVar(&o.Units, "units", 8, "simulated devices")
	flag.IntVar(&o.MigrateProcs, "migrate", 2, "migdb-migrate processes")
	flag.IntVar(&o.CheckProcs, "check", 2, "migdb-check-done processes")
	flag.IntVar(&o.Jobs, "jobs", 2, "--jobs of each worker")
	flag.DurationVar(&o.OnlineDelay, "online-delay", 3*time.Second, "device online this long after its reboot")
	flag.DurationVar(&o.Duration, "dur", 2*time.Second, "MIG_DURATION")
	flag.DurationVar(&o.Interval, "interval", time.Second, "MIG_CHECK_INTERVAL")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	flag.DurationVar(&o.APILatency, "api-latency", 0, "the fake balena API answers after this long (150ms: an internet round trip)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	quiet := flag.Bool("quiet", false, "print only the result line (benchmarks)")
	flag.Parse()
	if *quiet {
		o.Out = io.Discard
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	os.Exit(run(ctx, o, *quiet))
}

func run(ctx context.Context, o fleetsim.Options, quiet bool) int {
	f, err := fleetsim.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", err)
		return 1
	}
	defer f.Close()
	if err := f.Submit(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", err)
		return 1
	}
	start := time.Now()
	if err := f.StartWorkers(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", err)
		return 1
	}
	err = f.Wait(ctx, 500*time.Millisecond)
	took := time.Since(start)
	f.StopWorkers()
	use, useErr := f.APIUse()
	if !quiet {
		f.Stats()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", err)
		return 1
	}
	if useErr != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", useErr)
		return 1
	}
	if !quiet {
		fmt.Printf("fleet-sim: balena API requests by route: %v\n", use.Calls)
		fmt.Printf("fleet-sim: %s\n", use.KeySummary(time.Now()))
	}
	fmt.Printf("fleet-sim: %.2f balena API requests per unit from the workers (%d for %d units; %d of them GET /v7/device, mostly migdb-check-done polling)\n",
		float64(use.WorkerRequests())/float64(o.Units), use.WorkerRequests(), o.Units, use.Calls["GET /v7/device"])
	fmt.Printf("fleet-sim: %d units done in %.1fs (%.1f units/min)\n", o.Units, took.Seconds(), float64(o.Units)/took.Minutes())
	return 0
}

// Command openbalena starts the real balena API server the tests use
// (internal/testenv/openbalena) and keeps it running until Ctrl-C: for
// trying the fleet tools against open-balena-api, or for quick test runs
// against one instance (it writes a file that tests attach to when
// BALENA_MIGRATE_OPENBALENA names it).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/openbalena"
)

func main() {
	out := flag.String("o", "/tmp/openbalena.json", "write the URL and the admin's tokens here (mode 0600)")
	poll := flag.Duration("poll-interval", 0, "supervisor poll interval the API assumes (default 10m)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := openbalena.Start(ctx, openbalena.Options{PollInterval: *poll})
	if err != nil {
		fmt.Fprintln(os.Stderr, "openbalena:", err)
		os.Exit(1)
	}
	defer s.Stop()
	desc, err := s.Describe()
	if err == nil {
		err = os.WriteFile(*out, desc, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "openbalena:", err)
		return
	}
	fmt.Printf("open-balena-api at %s (started in %v); admin token in %s\n", s.URL, s.StartTime.Round(time.Second), *out)
	fmt.Printf("tests attach with: %s=%s go test ...\nCtrl-C stops it\n", openbalena.AttachEnv, *out)
	<-ctx.Done()
}

// Command fake-balena-api runs the in-memory balena API of package fake on
// a local address, for the demo, benchmarks and manual tries. Its first line
// on stdout is the API's URL; then one line per application. A device comes
// online when it reports itself (PATCH /device/v3/state with the
// deviceApiKey of its config.json).
package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fleetmig/balena-migrate/cmd/internal/cliapp"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(exitcode.Of(cliapp.Run(&cli.App{
		Name:  "fake-balena-api",
		Usage: "serve an in-memory balena API (the calls of docs/balena.md) until SIGINT/SIGTERM",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "address to listen on (port 0: any free port)"},
			&cli.StringFlag{Name: "token", Value: "fake-balena-token", EnvVars: []string{"MIG_BALENA_TOKEN"}, Usage: "API token the seeded user authenticates with"},
			&cli.StringFlag{Name: "user", Value: "fleet-operator", Usage: "user name of the seeded user"},
			&cli.StringSliceFlag{Name: "app", Usage: "application to create, org/name:device-type (repeatable)"},
			&cli.StringFlag{Name: "api-endpoint", Usage: "apiEndpoint written into config.json, where booted devices report (default: the URL the config was fetched from)"},
			&cli.Float64Flag{Name: "fault-rate", Usage: "fraction 0..1 of API requests answered with --fault-status"},
			&cli.IntFlag{Name: "fault-status", Value: 503, Usage: "HTTP status of injected faults (429 carries Retry-After: 1)"},
			&cli.DurationFlag{Name: "latency", Usage: "delay added to every API request"},
			&cli.StringFlag{Name: "url-file", Usage: "also write the URL to this file once listening"},
			&cli.BoolFlag{Name: "log-requests", Usage: "log every API request (method, path, status) to stderr"},
		},
		HideHelpCommand: true,
		Action:          run,
	})))
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return usage.Errorf("unexpected argument %q", c.Args().First())
	}
	if r := c.Float64("fault-rate"); r < 0 || r > 1 {
		return usage.Errorf("--fault-rate %v: want a fraction between 0 and 1", r)
	}
	if s := c.Int("fault-status"); s < 400 || s > 599 {
		return usage.Errorf("--fault-status %d: want an HTTP error status (400-599)", s)
	}
	if e := c.String("api-endpoint"); e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usage.Errorf("--api-endpoint %q: want an http(s) URL such as http://10.0.2.2:8080", e)
		}
	}
	cfg := fakebalena.Config{
		APIEndpoint: c.String("api-endpoint"),
		FaultRate:   c.Float64("fault-rate"), FaultStatus: c.Int("fault-status"), Latency: c.Duration("latency"),
	}
	if c.Bool("log-requests") {
		cfg.Log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).With().Timestamp().Logger()
	}
	api := fakebalena.New(cfg)
	if c.String("token") == "" {
		return usage.Errorf("--token must not be empty")
	}
	api.AddUser(c.String("user"), c.String("token"))
	for _, spec := range c.StringSlice("app") {
		slug, dt, err := fakebalena.ParseAppSpec(spec)
		if err != nil {
			return usage.Errorf("--app: %w", err)
		}
		api.AddApp(slug, dt)
	}
	l, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return usage.Errorf("--listen %s: %w", c.String("listen"), err)
	}
	base := "http://" + l.Addr().String()
	if err := announce(base, api.Apps(), c.String("url-file")); err != nil {
		l.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return api.Serve(ctx, l)
}

// announce writes the URL file, then prints the URL and applications, so
// a script that has read the first line can rely on the file too.
func announce(url string, apps []fakebalena.App, urlFile string) error {
	if urlFile != "" {
		tmp := filepath.Join(filepath.Dir(urlFile), "."+filepath.Base(urlFile)+".tmp")
		if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
			return fmt.Errorf("--url-file: %w", err)
		}
		if err := os.Rename(tmp, urlFile); err != nil {
			return fmt.Errorf("--url-file: %w", err)
		}
	}
	fmt.Println(url)
	for _, a := range apps {
		fmt.Printf("app %s id=%d device_type=%s\n", a.Slug, a.ID, a.DeviceType)
	}
	return nil
}

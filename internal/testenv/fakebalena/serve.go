package fakebalena

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// ParseAppSpec reads an application given as "org/name:device-type", as
// the standalone runner takes them.
func ParseAppSpec(s string) (slug, deviceType string, err error) {
	slug, deviceType, ok := strings.Cut(strings.TrimSpace(s), ":")
	org, name, hasSlash := strings.Cut(slug, "/")
	if !ok || !hasSlash || org == "" || name == "" || strings.Contains(name, "/") || deviceType == "" {
		return "", "", fmt.Errorf("application %q: want org/name:device-type, e.g. myorg/fleet:raspberrypi3", s)
	}
	if _, ok := knownType(deviceType); !ok {
		return "", "", fmt.Errorf("application %q: balena knows no device type %q (genericx86-64 is now genericx86-64-ext)", s, deviceType)
	}
	return slug, deviceType, nil
}

// Serve serves the API on l until ctx ends, then shuts down, giving
// requests in flight up to five seconds to finish.
func (a *API) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("fake balena API: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}

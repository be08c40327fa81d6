package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Exposition writes the Prometheus text format for a snapshot (package
// metrics adds what the process itself counted).
type Exposition interface {
	Write(w io.Writer, s *Snapshot) error
}

// Handler serves the status page at /, the snapshot as JSON at
// /status.json and the metrics at /metrics.
func Handler(c *Census, m Exposition, program string) http.Handler {
	mux := http.NewServeMux()
	snap := func(w http.ResponseWriter) (*Snapshot, bool) {
		s, err := c.Snapshot()
		if err != nil {
			http.Error(w, "reading the database: "+err.Error(), http.StatusInternalServerError)
			return nil, false
		}
		return s, true
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := snap(w)
		if !ok {
			return
		}
		var b bytes.Buffer
		if err := WritePage(&b, s, program, c.DB.Root()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b.Bytes())
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		s, ok := snap(w)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s, ok := snap(w)
		if !ok {
			return
		}
		var b bytes.Buffer
		if err := m.Write(&b, s); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(b.Bytes())
	})
	return mux
}

// Serve listens on addr and serves h until ctx ends. It returns the
// address it listens on (the port chosen for ":0").
func Serve(ctx context.Context, addr string, h http.Handler, log zerolog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--http %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("status server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	return ln.Addr().String(), nil
}

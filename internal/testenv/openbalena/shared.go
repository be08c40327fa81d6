package openbalena

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// Shared is one instance for a whole test binary, started by the first
// test that asks for it (tests that do not need it cost nothing). A test
// binary declares one in its TestMain and stops it after m.Run:
//
//	var realAPI = &openbalena.Shared{}
//	func TestMain(m *testing.M) { code := m.Run(); realAPI.Stop(); os.Exit(code) }
type Shared struct {
	Options Options

	once sync.Once
	srv  *Server
	err  error
}

// AttachEnv names a file that cmd/dev/openbalena wrote for a running
// instance: tests then use that instance instead of starting their own
// (for quick turns while developing; CI never sets it).
const AttachEnv = "BALENA_MIGRATE_OPENBALENA"

// Get returns the running instance, starting it the first time. It skips
// t where the server cannot be run (fails it under CI), and fails t when
// the server did not start.
func (sh *Shared) Get(t testenv.TB) *Server {
	t.Helper()
	if f := os.Getenv(AttachEnv); f != "" {
		sh.once.Do(func() { sh.srv, sh.err = attach(f) })
	} else {
		Need(t)
		sh.once.Do(func() { sh.srv, sh.err = Start(context.Background(), sh.Options) })
	}
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.srv
}

// Stop stops the instance if one was started here.
func (sh *Shared) Stop() {
	if sh.srv != nil && sh.srv.dir != "" {
		sh.srv.Stop()
	}
}

// attach reads what cmd/dev/openbalena wrote about its instance.
func attach(file string) (*Server, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AttachEnv, err)
	}
	s := &Server{}
	if err := json.Unmarshal(data, s); err != nil || s.URL == "" {
		return nil, fmt.Errorf("%s: %s is not what cmd/dev/openbalena writes (%v)", AttachEnv, file, err)
	}
	return s, nil
}

// Describe is what attach reads: the URL and the admin's tokens.
func (s *Server) Describe() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

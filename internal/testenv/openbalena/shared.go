package openbalena

import (
	"context"
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

// Get returns the running instance, starting it the first time. It skips
// t where the server cannot be run (fails it under CI), and fails t when
// the server did not start.
func (sh *Shared) Get(t testenv.TB) *Server {
	t.Helper()
	Need(t)
	sh.once.Do(func() { sh.srv, sh.err = Start(context.Background(), sh.Options) })
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.srv
}

// Stop stops the instance if one was started.
func (sh *Shared) Stop() {
	if sh.srv != nil {
		sh.srv.Stop()
	}
}

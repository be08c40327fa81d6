// Package openbalena runs the real balena API server for tests:
// open-balena-api (the server openBalena runs, from the code base of
// balenaCloud's), built once by scripts/test-setup.d/30-open-balena-api,
// started here on free loopback ports with its own PostgreSQL data
// directory, its own Redis and a tiny read-only S3 serving device-type.json
// files, and stopped again — also when the test binary dies (every process
// it starts gets SIGKILL when its parent goes).
//
// Start-up takes about a minute on a busy 2-core machine, so a test binary
// shares one instance between its tests (Shared) and each test makes its own
// fleet (Server.NewFleet).
package openbalena

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv"
)

// CacheDir is where the set-up step built the server: the cache
// directory's open-balena-api.
func CacheDir() string {
	c := os.Getenv("BALENA_MIGRATE_TEST_CACHE")
	if c == "" {
		c = "/var/cache/balena-migrate-test"
	}
	return filepath.Join(c, "open-balena-api")
}

// Ready says why the server cannot be started here, or nil.
func Ready() error {
	dir := CacheDir()
	if _, err := os.Stat(filepath.Join(dir, "READY")); err != nil {
		return fmt.Errorf("open-balena-api is not built in %s (scripts/test-setup.d/30-open-balena-api builds it)", dir)
	}
	if os.Geteuid() != 0 {
		return errors.New("open-balena-api's PostgreSQL is run as user postgres: the test must run as root")
	}
	for _, p := range []string{pgBin + "/initdb", pgBin + "/postgres"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing (scripts/test-packages installs postgresql)", p)
		}
	}
	if _, err := testenv.LookPath("redis-server"); err != nil {
		return errors.New("redis-server is missing (scripts/test-packages installs redis-server)")
	}
	return nil
}

// Need skips t (fails it under CI) when the server cannot be started.
func Need(t testenv.TB) {
	t.Helper()
	err := Ready()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	testenv.Need(t, err == nil, msg)
}

// Options shape one instance. The zero value is what the tests use.
type Options struct {
	// PollInterval is the supervisor poll interval the API assumes for
	// every device (DEFAULT_SUPERVISOR_POLL_INTERVAL): a device is online by
	// heartbeat for 1.5 times it after its last state GET or PATCH.
	// Default 10 minutes, as in balenaCloud.
	PollInterval time.Duration
	// HeartbeatTimeout is how long a device stays "timeout" before it is
	// "offline" (API_HEARTBEAT_STATE_TIMEOUT_SECONDS). Default 15 s.
	HeartbeatTimeout time.Duration
	// TLSNames, when set, puts a TLS front before the API with a
	// certificate for 127.0.0.1 and these names (e.g. the address a VM
	// reaches this host at) from the instance's own CA: config.json then
	// says apiEndpoint https://127.0.0.1:<front> and carries the CA as
	// balenaRootCA, as a self-signed openBalena's does.
	TLSNames []string
	// Log receives the servers' output; default a file in the instance's
	// directory, shown when start-up fails.
	Log io.Writer
}

// Server is one running API with what it needs.
type Server struct {
	// URL is the API's base URL, http://127.0.0.1:<port>.
	URL string `json:"url"`
	// AdminKey is an API key of the superuser "admin", whose organisation
	// (id 1) holds the fleets tests make.
	AdminKey string `json:"admin_key"`
	// AdminJWT is the superuser's session token (some routes, such as
	// making API keys, take no API key).
	AdminJWT string `json:"admin_jwt"`
	// TLSURL is the TLS front's URL (with TLSNames), the apiEndpoint of
	// the configs it generates; CA the PEM certificate that signs it.
	TLSURL string `json:"tls_url,omitempty"`
	CA     []byte `json:"ca,omitempty"`
	// PGPort is its PostgreSQL's port (user postgres, database resin),
	// for looking at what the API does not show (application API keys).
	PGPort int `json:"pg_port"`
	// StartTime is how long Start took.
	StartTime time.Duration `json:"start_time"`

	dir    string
	procs  []*exec.Cmd
	s3     *http.Server
	front  *tlsFront
	logf   *os.File
	stopMu sync.Mutex
	done   bool
}

// Admin credentials of the instance; the database is the instance's own.
const (
	adminEmail    = "admin@openbalena.test"
	adminPassword = "migrate-tests-only"
)

// Start starts an instance and returns once it answers, its device types
// are loaded and the admin's API key is made. On failure everything it
// started is stopped.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	if err := Ready(); err != nil {
		return nil, err
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 10 * time.Minute
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = 15 * time.Second
	}
	began := time.Now()
	dir, err := os.MkdirTemp("", "openbalena-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as postgres and must reach its data directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("open-balena-api: %w%s", err, s.logTail())
			s.Stop()
		}
	}()
	if opts.Log == nil {
		if s.logf, err = os.Create(filepath.Join(dir, "servers.log")); err != nil {
			return nil, err
		}
		opts.Log = s.logf
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	pgPort, redisPort, apiPort := ports[0], ports[1], ports[2]
	s.PGPort = pgPort
	if err := s.startPostgres(ctx, pgPort, opts.Log); err != nil {
		return nil, err
	}
	if err := s.startRedis(redisPort, opts.Log); err != nil {
		return nil, err
	}
	s3URL, err := s.startS3()
	if err != nil {
		return nil, err
	}
	apiHost := fmt.Sprintf("127.0.0.1:%d", apiPort)
	if opts.TLSNames != nil {
		if s.front, err = s.startTLSFront(opts.TLSNames); err != nil {
			return nil, fmt.Errorf("TLS front: %w", err)
		}
		apiHost = fmt.Sprintf("127.0.0.1:%d", s.front.port())
		s.TLSURL = "https://" + apiHost
	}
	env, err := s.apiEnv(apiHost, opts, apiPort, pgPort, redisPort, s3URL)
	if err != nil {
		return nil, err
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	if s.front != nil {
		env = append(env, "NODE_EXTRA_CA_CERTS="+s.front.caFile)
		if err := s.front.serve(s.URL); err != nil {
			return nil, err
		}
	}
	if err := s.startAPI(env, opts.Log); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	if s.AdminJWT, s.AdminKey, err = s.adminKey(ctx); err != nil {
		return nil, err
	}
	s.StartTime = time.Since(began)
	return s, nil
}

// Stop stops every process of the instance and removes its directory. It
// may be called more than once.
func (s *Server) Stop() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.done {
		return
	}
	s.done = true
	// Last started, first stopped: the API before its database.
	for i := len(s.procs) - 1; i >= 0; i-- {
		stop(s.procs[i])
	}
	if s.s3 != nil {
		s.s3.Close()
	}
	if s.front != nil && s.front.srv != nil {
		s.front.srv.Close()
	} else if s.front != nil {
		s.front.l.Close()
	}
	if s.logf != nil {
		s.logf.Close()
	}
	os.RemoveAll(s.dir)
}

// stop ends a process group: SIGTERM, then SIGKILL after 10 s.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// spawn starts a child in its own process group that is killed when this
// process dies, output to log.
func (s *Server) spawn(cmd *exec.Cmd, log io.Writer) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.procs = append(s.procs, cmd)
	return nil
}

// exited says whether a started process has ended.
func exited(cmd *exec.Cmd) bool {
	return cmd.Process != nil && syscall.Kill(cmd.Process.Pid, 0) != nil
}

// logTail is the end of the servers' log, for errors.
func (s *Server) logTail() string {
	if s.logf == nil {
		return ""
	}
	data, err := os.ReadFile(s.logf.Name())
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return "\n--- end of the servers' log ---\n" + strings.TrimSpace(string(data))
}

// freePorts finds n free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

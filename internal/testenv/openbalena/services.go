package openbalena

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// pgBin is Debian 12's PostgreSQL.
const pgBin = "/usr/lib/postgresql/15/bin"

// startPostgres makes a cluster in the instance's directory, runs it on
// port as user postgres (initdb refuses root) with durability off (a test
// database), and creates the API's role and database.
func (s *Server) startPostgres(ctx context.Context, port int, log io.Writer) error {
	pg, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("user postgres (made by Debian's postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	asPostgres := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	dir := filepath.Join(s.dir, "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, pgBin+"/initdb", "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = asPostgres
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	srv := exec.Command(pgBin+"/postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=150")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: asPostgres.Credential}
	srv.Dir = dir
	if err := s.spawn(srv, log); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := waitPort(ctx, port, srv, 60*time.Second); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// balena-init.sql indexes date_trunc(text, timestamptz, text), which
	// PostgreSQL marks immutable only from version 16 on; Debian 12 has 15.
	for _, sql := range []string{
		"CREATE ROLE docker LOGIN SUPERUSER PASSWORD 'docker'",
		"CREATE DATABASE resin OWNER docker",
	} {
		if err := psql(ctx, port, "postgres", sql); err != nil {
			return err
		}
	}
	return psql(ctx, port, "resin", "ALTER FUNCTION pg_catalog.date_trunc(text, timestamptz, text) IMMUTABLE")
}

func psql(ctx context.Context, port int, db, sql string) error {
	cmd := exec.CommandContext(ctx, "psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
		"-p", strconv.Itoa(port), "-U", "postgres", "-d", db, "-c", sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %v: %s", sql, err, out)
	}
	return nil
}

// startRedis runs a Redis that keeps nothing on disk.
func (s *Server) startRedis(port int, log io.Writer) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "redis")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--daemonize", "no")
	if err := s.spawn(cmd, log); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := waitPort(context.Background(), port, cmd, 30*time.Second); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// waitPort waits until something listens on the loopback port, failing
// early when cmd exits.
func waitPort(ctx context.Context, port int, cmd *exec.Cmd, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		switch {
		case exited(cmd):
			return fmt.Errorf("exited before listening on port %d", port)
		case time.Now().After(deadline):
			return fmt.Errorf("not listening on port %d after %v", port, limit)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

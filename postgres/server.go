package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a postgres process of our own: a fresh cluster in one directory,
// listening on loopback only, with trust authentication for the local user
// postgres.
type Server struct {
	// DSN is the connection string of its postgres database.
	DSN    string
	cmd    *exec.Cmd
	dir    string
	log    *os.File
	exited chan error
}

// ErrNotInstalled is returned by StartServer when PostgreSQL's server
// binaries are not installed.
var ErrNotInstalled = errors.New("postgresql is not installed (apt-get install postgresql)")

// Settings are the server settings the benchmark runs with: what a team
// would set for an analytics table on this machine (memory for sorts and
// hash aggregates, fewer checkpoints during loads), durability unchanged.
var Settings = map[string]string{
	"shared_buffers":                  "2GB",
	"work_mem":                        "256MB",
	"maintenance_work_mem":            "1GB",
	"max_wal_size":                    "16GB",
	"checkpoint_timeout":              "30min",
	"max_parallel_workers_per_gather": "2",
	"effective_cache_size":            "16GB",
}

// StartServer creates a cluster in dir (unless one is there), starts
// postgres on 127.0.0.1:port with its socket in dir, and waits until it
// accepts connections. As root, it runs initdb and postgres as the user
// postgres, which the Debian package creates, since PostgreSQL refuses to
// run as root; the directories above dir must then be searchable by it.
func StartServer(ctx context.Context, dir string, port int) (*Server, error) {
	bindir, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres runs as the user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("postgres dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		initdb := exec.CommandContext(ctx, filepath.Join(bindir, "initdb"), "-D", data,
			"-U", "postgres", "--auth=trust", "--locale=C", "--encoding=UTF8")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1"}
	keys := make([]string, 0, len(Settings))
	for k := range Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+Settings[k])
	}
	cmd := exec.Command(filepath.Join(bindir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{
		DSN: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port),
		cmd: cmd, dir: dir, log: logf, exited: make(chan error, 1),
	}
	go func() { s.exited <- cmd.Wait() }()
	if err := s.waitReady(ctx, port); err != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		logf.Close()
		return nil, err
	}
	return s, nil
}

// PID returns the postmaster's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func (s *Server) waitReady(ctx context.Context, port int) error {
	deadline := time.Now().Add(60 * time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("postgres exited at start (%v); see %s", err, filepath.Join(s.dir, "postgres.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		c.Close()
		// The port opens before recovery ends; a real connection tells.
		if err := ping(ctx, s.DSN); err == nil {
			return nil
		}
	}
	return errors.New("postgres did not accept connections within 60s")
}

// Stop ends the server with a fast shutdown (SIGINT), or SIGKILL after 60s.
func (s *Server) Stop() error {
	defer s.log.Close()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return nil
	case <-time.After(60 * time.Second):
		syscall.Kill(-s.PID(), syscall.SIGKILL)
		<-s.exited
		return errors.New("postgres did not stop within 60s: killed")
	}
}

// binDir finds the server binaries: on the PATH, or Debian's newest
// /usr/lib/postgresql/N/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", ErrNotInstalled
}

// FreePort returns a TCP port of 127.0.0.1 that is free now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

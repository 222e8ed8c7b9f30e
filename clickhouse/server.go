package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is a clickhouse-server process of our own: its configuration, data
// and logs in one directory, listening on loopback only.
type Server struct {
	// URL is the base URL of its HTTP interface.
	URL    string
	cmd    *exec.Cmd
	dir    string
	log    *os.File
	exited chan error // receives the process's end, once
}

// StartServer starts clickhouse-server with its data in dir (created; an
// existing one is reused), its HTTP interface on httpPort and its native
// protocol on tcpPort of 127.0.0.1, and waits until it answers. The
// configuration is the package's defaults with the time zone UTC, which the
// baseline's date buckets rely on.
func StartServer(ctx context.Context, dir string, httpPort, tcpPort int) (*Server, error) {
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"data/tmp", "data/user_files", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("clickhouse dir: %w", err)
		}
	}
	config := fmt.Sprintf(configXML, dir, dir, httpPort, tcpPort, dir, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("clickhouse config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, fmt.Errorf("clickhouse users: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "log", "stdout.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start clickhouse-server: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(httpPort), cmd: cmd, dir: dir, log: logf,
		exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	if err := s.waitReady(ctx, s.exited); err != nil {
		s.kill()
		<-s.exited
		logf.Close()
		return nil, err
	}
	return s, nil
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func (s *Server) waitReady(ctx context.Context, exited chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("clickhouse-server exited at start (%v); see %s", err, filepath.Join(s.dir, "log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.URL + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("clickhouse-server did not answer within 60s")
}

// Stop ends the server gracefully (SIGTERM), or by SIGKILL after 30s.
func (s *Server) Stop() error {
	defer s.log.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
		s.kill()
		<-s.exited
		return errors.New("clickhouse-server did not stop within 30s: killed")
	}
}

func (s *Server) kill() {
	syscall.Kill(-s.PID(), syscall.SIGKILL)
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

const configXML = `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>%s/log/server.log</log>
    <errorlog>%s/log/error.log</errorlog>
    <size>100M</size>
    <count>1</count>
  </logger>
  <http_port>%d</http_port>
  <tcp_port>%d</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>1073741824</uncompressed_cache_size>
  <mark_cache_size>1073741824</mark_cache_size>
  <path>%s/data/</path>
  <tmp_path>%s/data/tmp/</tmp_path>
  <user_files_path>%s/data/user_files/</user_files_path>
  <users_config>%s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
`

const usersXML = `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>10000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`

package guest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Restart back-off of the workload: doubling from minBackoff to maxBackoff,
// back to minBackoff after a run longer than stableRun.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	stableRun  = 10 * time.Second
)

// supervisor keeps one workload running, restarting it when it exits.
type supervisor struct {
	procs   *children
	console io.Writer
	log     *slog.Logger

	mu       sync.Mutex
	cur      *workloadRun // nil when no workload is supervised
	pid      int          // of the running process, 0 between runs
	restarts int
	lastExit string
}

// workloadRun is one supervised workload; start replaces it with another.
type workloadRun struct {
	w       Workload
	stopped bool          // set under supervisor.mu by stop
	stopCh  chan struct{} // closed by stop
	done    chan struct{} // closed when the supervising goroutine ends
}

func newSupervisor(procs *children, console io.Writer, log *slog.Logger) *supervisor {
	return &supervisor{procs: procs, console: console, log: log}
}

// start stops the current workload, if any, and starts w. It returns an
// error, and supervises nothing, when w cannot be started at all.
func (s *supervisor) start(w Workload, grace time.Duration) error {
	if len(w.Cmd) == 0 || w.Cmd[0] == "" {
		return errors.New("start: empty command")
	}
	s.stop(grace)
	r := &workloadRun{w: w, stopCh: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, err := s.spawnLocked(w)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	s.cur = r
	s.restarts = 0
	s.lastExit = ""
	go s.supervise(r, cmd)
	return nil
}

// spawnLocked starts one process of w; s.mu is held.
func (s *supervisor) spawnLocked(w Workload) (*exec.Cmd, error) {
	cmd := exec.Command(w.Cmd[0], w.Cmd[1:]...)
	cmd.Env = mergeEnv(os.Environ(), w.Env)
	cmd.Dir = w.Dir
	cmd.Stdout, cmd.Stderr = s.console, s.console
	setProcessGroup(cmd)
	if err := s.procs.start(cmd); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	s.log.Info("workload started", "pid", s.pid, "cmd", w.Cmd)
	return cmd, nil
}

// supervise waits for the workload and restarts it with back-off until
// the run is stopped.
func (s *supervisor) supervise(r *workloadRun, cmd *exec.Cmd) {
	defer close(r.done)
	backoff := minBackoff
	for {
		started := time.Now()
		err := cmd.Wait()
		s.procs.done(cmd.Process.Pid)
		exit := describeExit(cmd.ProcessState, err)
		s.mu.Lock()
		s.pid = 0
		s.lastExit = exit
		stopped := r.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		s.log.Warn("workload exited", "exit", exit, "restartIn", backoff)
		if time.Since(started) > stableRun {
			backoff = minBackoff
		}
		for cmd = nil; cmd == nil; {
			select {
			case <-r.stopCh:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
			s.mu.Lock()
			if r.stopped {
				s.mu.Unlock()
				return
			}
			c, err := s.spawnLocked(r.w)
			if err != nil {
				s.lastExit = "start: " + err.Error()
			} else {
				cmd = c
				s.restarts++
			}
			s.mu.Unlock()
		}
	}
}

// stop stops the supervised workload: SIGTERM to its process group, SIGKILL
// after grace. It returns once the process is gone.
func (s *supervisor) stop(grace time.Duration) {
	s.mu.Lock()
	r := s.cur
	if r == nil {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	r.stopped = true
	close(r.stopCh)
	pid := s.pid
	s.mu.Unlock()
	if pid == 0 {
		<-r.done
		return
	}
	killGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		killGroup(pid, syscall.SIGKILL)
		<-r.done
	}
}

// status reports the workload's state.
func (s *supervisor) status() WorkloadStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return WorkloadStatus{Running: s.pid != 0, PID: s.pid, Restarts: s.restarts, LastExit: s.lastExit}
}

// Command moltbot-sandbox-agent is the exec agent baked into the sandbox image:
// PID 1 of each sandbox, serving sandboxd over stdin/stdout (see internal/agent).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agent"
)

func main() {
	// Not dumpable: code in the sandbox runs as our uid and could otherwise
	// open /proc/1/fd/0 or /proc/1/fd/1 to steal requests or forge replies.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "agent: prctl(PR_SET_DUMPABLE): %v\n", err)
		os.Exit(1)
	}
	// Threads count against the container's pids limit.
	runtime.GOMAXPROCS(1)
	// Under a fork bomb the pids limit also refuses new threads, and a Go
	// runtime that cannot start one dies. Start a few now; idle threads stay.
	prewarmThreads(8)
	// As PID 1 the kernel only delivers signals we handle; without a sink the
	// Go runtime would exit on TERM/HUP/INT and crash on QUIT.
	sink := make(chan os.Signal, 8)
	signal.Notify(sink, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGABRT, syscall.SIGTSTP,
		syscall.SIGTTIN, syscall.SIGTTOU)
	go func() {
		for range sink {
		}
	}()
	a := agent.New(agent.Config{In: os.Stdin, Out: os.Stdout, Log: os.Stderr, Sweep: os.Getpid() == 1})
	if err := a.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		os.Exit(1)
	}
}

// prewarmThreads makes the runtime create n OS threads by locking n
// goroutines to threads at once, then lets them go back to the idle pool.
func prewarmThreads(n int) {
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	for range n {
		go func() {
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
}

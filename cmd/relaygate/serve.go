package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/daemon"
)

// serve runs the daemon until ctx ends; SIGHUP reloads it.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.Version = version()
	log := newLogger(cfg, stderr)
	// The heap is mostly the grant table, which lives long; the garbage is
	// per message and small. Go's default (GOGC=100) lets the heap grow to
	// twice the table before it collects, about 200 MB at a million grants;
	// at 50 it stays near one and a half times, for collections that cost
	// little when little is garbage. GOGC, when set, decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// Ask for SIGHUP before anything is bound, so an early reload request is
	// never the default "terminate".
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d, err := daemon.New(ctx, cfg.Config, log, cdbwriter.SystemClock{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs a rejection itself; the daemon runs on.
				_ = d.Reload(ctx)
			}
		}
	}()
	err = d.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

func newLogger(cfg serveConfig, w io.Writer) zerolog.Logger {
	if cfg.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	}
	level, err := zerolog.ParseLevel(cfg.logLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

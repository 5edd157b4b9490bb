// Command demo runs a small service supervised by taskscope.
//
// This is the placeholder until the full demo (HTTP endpoints, metrics,
// traces, dashboards) lands: it supervises a few tasks of every kind and
// shuts down on SIGINT/SIGTERM or after -duration, printing what happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskscope/taskscope/runtime"
)

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: run until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	sup := runtime.New("demo")
	ingest := sup.Group("ingest")
	for i := range 3 {
		ingest.Go(fmt.Sprintf("consumer-%d", i), func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
	}
	pipeline := sup.Group("pipeline")
	sup.Every("maintenance", time.Second, func(ctx context.Context) error {
		for range 10 {
			pipeline.Go("item", func(ctx context.Context) error {
				if rand.IntN(10) == 0 {
					return errors.New("item failed")
				}
				return nil
			})
		}
		return nil
	})
	slog.Info("demo running; Ctrl-C to stop")
	<-ctx.Done()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := sup.Shutdown(shutdownCtx)
	slog.Info("shutdown finished", "err", err)
}

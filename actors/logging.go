package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// DiscardLogger returns a logger that drops everything: Baton prints nothing
// unless the application injects a logger.
func DiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// SystemConfig returns a protoactor configuration whose logs go to logger
// (tagged lib=protoactor) instead of protoactor's coloured stderr default, with
// dead-letter request logging off (a caller that gave up is not news).
// A nil logger discards.
func SystemConfig(logger *slog.Logger) *actor.Config {
	if logger == nil {
		logger = DiscardLogger()
	}
	return actor.Configure(
		actor.WithLoggerFactory(func(system *actor.ActorSystem) *slog.Logger {
			return logger.With("lib", "protoactor", "system", system.ID)
		}),
		actor.WithDeadLetterRequestLogging(false),
		// protoactor throttles dead-letter logs with a goroutine that lives
		// for one interval; a short one lets it end soon after shutdown.
		actor.WithDeadLetterThrottleInterval(100*time.Millisecond),
		actor.WithDeadLetterThrottleCount(10),
	)
}

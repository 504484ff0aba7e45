package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// NewSystem returns a protoactor actor system whose logs go to logger
// (tagged lib=protoactor) instead of protoactor's coloured stderr default,
// with dead-letter request logging off (a caller that gave up is not news).
// A nil logger discards. runtime.WithActorSystem accepts it.
func NewSystem(logger *slog.Logger) *actor.ActorSystem {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(system *actor.ActorSystem) *slog.Logger {
			return logger.With("lib", "protoactor", "system", system.ID)
		}),
		actor.WithDeadLetterRequestLogging(false),
		// protoactor throttles dead-letter logs with a goroutine that lives
		// for one interval; a short one lets it end soon after shutdown.
		actor.WithDeadLetterThrottleInterval(100*time.Millisecond),
		actor.WithDeadLetterThrottleCount(10),
	))
}

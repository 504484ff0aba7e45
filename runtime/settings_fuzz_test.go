package runtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-go/baton/backends"
)

// settingBounds are the ranges of the Settings doc, per setting. For
// registration_ttl the doc promises > 0 and the parser holds the stricter
// >= 1ms, which is what is checked.
var settingBounds = map[string]func(Settings) bool{
	"cache.default_ttl": func(s Settings) bool { return s.CacheDefaultTTL == 0 || s.CacheDefaultTTL >= backends.MinCacheTTL },
	"cache.max_batch":   func(s Settings) bool { return s.CacheMaxBatch >= 1 && s.CacheMaxBatch <= 10000 },
	"lock.ttl":          func(s Settings) bool { return s.LockTTL >= backends.MinLockTTL },
	"discovery.registration_ttl": func(s Settings) bool {
		return s.RegistrationTTL >= time.Millisecond
	},
}

// FuzzSettingValue sends an arbitrary config-center value to every
// hot-reloaded setting. Each either takes a value inside its documented
// bounds — and the text it reports for it reads back as the same value —
// or rejects the text and leaves the settings as they were.
func FuzzSettingValue(f *testing.F) {
	for _, s := range []string{
		"", "0", "1ms", "999us", "100ms", "99ms", "15s", "-1s", "+5s", ".5s", "1h1h",
		"1", "10000", "10001", "-0", "0x10", " 5", "5 ", "1e3",
		"9223372036854775807ns", "9223372036854775808ns", "2562047h47m16.854775807s",
	} {
		f.Add(s)
	}
	defaults := Settings{CacheDefaultTTL: time.Minute, CacheMaxBatch: 64, LockTTL: 15 * time.Second, RegistrationTTL: 10 * time.Second}
	if len(settingBounds) != len(reloadables) {
		f.Fatalf("%d bounds for %d reloadable settings", len(settingBounds), len(reloadables))
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, r := range reloadables {
			component, name := r.names()
			id := component + "." + name
			inBounds := settingBounds[id]
			if inBounds == nil {
				t.Fatalf("no bounds for setting %s", id)
			}
			next := defaults
			changed, value, err := r.update(&next, defaults, raw, true)
			if err != nil {
				if changed || value != raw || next != defaults {
					t.Fatalf("%s=%q rejected (%v) but changed=%v value=%q settings=%+v", id, raw, err, changed, value, next)
				}
				continue
			}
			if !inBounds(next) {
				t.Fatalf("%s=%q accepted out of bounds: %+v", id, raw, next)
			}
			if changed != (next != defaults) {
				t.Fatalf("%s=%q: changed=%v but settings %+v", id, raw, changed, next)
			}
			if !changed {
				continue
			}
			if value == "" || value != fmt.Sprint(fieldOf(next, id)) {
				t.Fatalf("%s=%q reports value %q for %+v", id, raw, value, next)
			}
			again := next
			if moved, _, err := r.update(&again, defaults, value, true); err != nil || moved || again != next {
				t.Fatalf("%s: reported value %q does not read back: moved=%v err=%v", id, value, moved, err)
			}
			// Deleted from every layer: back to the Spec value.
			if moved, _, err := r.update(&again, defaults, "", false); err != nil || !moved || again != defaults {
				t.Fatalf("%s: not found did not restore the default: %+v %v", id, again, err)
			}
		}
	})
}

func fieldOf(s Settings, id string) any {
	switch id {
	case "cache.default_ttl":
		return s.CacheDefaultTTL
	case "cache.max_batch":
		return s.CacheMaxBatch
	case "lock.ttl":
		return s.LockTTL
	}
	return s.RegistrationTTL
}

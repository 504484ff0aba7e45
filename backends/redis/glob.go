package redis

import "strings"

// escapeGlob escapes the characters Redis' glob matcher (SCAN MATCH, KEYS,
// PSUBSCRIBE) treats specially, so a pattern built from a user-supplied name
// matches that name literally.
func escapeGlob(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

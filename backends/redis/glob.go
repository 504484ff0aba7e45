package redis

import "strings"

// escapeGlob escapes the characters Redis' glob matcher (SCAN MATCH, KEYS,
// PSUBSCRIBE) treats specially, so a pattern built from a user-supplied name
// matches that name literally. It works on bytes, as the matcher does:
// names may hold any bytes, and ranging over runes would turn invalid UTF-8
// into U+FFFD, so the pattern would match another name instead.
func escapeGlob(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

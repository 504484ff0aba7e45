package redis

import (
	"slices"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/integration/harness"
)

// globMatch is a port of Redis' glob matcher (stringmatchlen in util.c,
// case-sensitive), the one SCAN MATCH, KEYS and PSUBSCRIBE use. Like the
// original it works on bytes; bracket ranges compare bytes as signed chars,
// as the server built for amd64 does. TestGlobMatchAgreesWithRedis checks
// it against a real server.
func globMatch(pattern, s string) bool {
	skipLonger := false
	return globMatchFrom(pattern, s, &skipLonger, 0)
}

func globMatchFrom(pat, str string, skipLonger *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	p, s := 0, 0
	for p < len(pat) && s < len(str) {
		switch pat[p] {
		case '*':
			for p+1 < len(pat) && pat[p+1] == '*' {
				p++
			}
			if p == len(pat)-1 {
				return true
			}
			for s < len(str) {
				if globMatchFrom(pat[p+1:], str[s:], skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s++
			}
			*skipLonger = true
			return false
		case '?':
			s++
		case '[':
			p++
			not := p < len(pat) && pat[p] == '^'
			if not {
				p++
			}
			match := false
		class:
			for {
				switch {
				case p >= len(pat):
					p-- // unterminated: the step below leaves p at the end
					break class
				case pat[p] == '\\' && p+1 < len(pat):
					p++
					if pat[p] == str[s] {
						match = true
					}
				case pat[p] == ']':
					break class
				case p+2 < len(pat) && pat[p+1] == '-':
					lo, hi, c := int(int8(pat[p])), int(int8(pat[p+2])), int(int8(str[s]))
					if lo > hi {
						lo, hi = hi, lo
					}
					p += 2
					if c >= lo && c <= hi {
						match = true
					}
				default:
					if pat[p] == str[s] {
						match = true
					}
				}
				p++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s++
		case '\\':
			if p+1 < len(pat) {
				p++
			}
			fallthrough
		default:
			if pat[p] != str[s] {
				return false
			}
			s++
		}
		p++
		if s == len(str) {
			for p < len(pat) && pat[p] == '*' {
				p++
			}
			break
		}
	}
	return p == len(pat) && s == len(str)
}

// FuzzEscapeGlob checks that an escaped name matches itself and nothing
// else, and that escaped name + "*" (how the cache's Clear and the lock
// notifications build their patterns) matches exactly the strings that
// start with the name — so a Clear never reaches into another cache.
func FuzzEscapeGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"baton/dev/cache/sessions/", "baton/dev/cache/sessions/k"},
		{"baton/dev/cache/a/", "baton/dev/cache/ab/k"},
		{"a*b?c", "aXbYc"},
		{"[x-z]", "y"},
		{"[^a]", "b"},
		{`back\slash`, `back\slash`},
		{"caret^and-dash", "caret^and-dash"},
		{"]", "]"},
		{"\xff", "\uFFFD"},
		{"\xe2\x82", "\xe2\x82\xac"},
		{"", ""},
		{"", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, other string) {
		pat := escapeGlob(name)
		if !globMatch(pat, name) {
			t.Fatalf("escapeGlob(%q) = %q does not match the name", name, pat)
		}
		if other != name && globMatch(pat, other) {
			t.Fatalf("escapeGlob(%q) = %q matches %q", name, pat, other)
		}
		// Neighbours of the name: one byte shorter, longer, or changed.
		var near []string
		if name != "" {
			near = append(near, name[:len(name)-1], name[1:], name[:len(name)-1]+string(name[len(name)-1]^1))
		}
		near = append(near, name+"x", "x"+name)
		for _, o := range near {
			if o != name && globMatch(pat, o) {
				t.Fatalf("escapeGlob(%q) = %q matches %q", name, pat, o)
			}
		}
		// "*" never matches the empty string in Redis, so the prefix
		// pattern of "" matches every non-empty string.
		all := pat + "*"
		for _, o := range append(near, other, name) {
			want := strings.HasPrefix(o, name) && o != ""
			if got := globMatch(all, o); got != want {
				t.Fatalf("pattern %q (prefix %q) on %q: match = %v, want %v", all, name, o, got, want)
			}
		}
	})
}

// TestGlobMatchAgreesWithRedis holds the reference matcher to the server:
// each pattern is tried with SSCAN MATCH on a set holding the string. The
// pattern "*" alone is left out: SCAN and its kin skip matching for it.
func TestGlobMatchAgreesWithRedis(t *testing.T) {
	r := harness.StartRedis(t)
	cl := goredis.NewClient(&goredis.Options{Addr: r.Addr(), Protocol: 2})
	t.Cleanup(func() { _ = cl.Close() })
	ctx := t.Context()

	cases := [][2]string{ // pattern, string
		{"abc", "abc"}, {"abc", "abd"}, {"a*", "a"}, {"*x", "x"}, {"", ""},
		{"a*c", "abbbc"}, {"a*c", "abbb"}, {"a**c", "ac"}, {"?", ""}, {"?", "é"},
		{"[abc]", "b"}, {"[^abc]", "b"}, {"[a-c]", "b"}, {"[c-a]", "b"}, {"[a-]", "-"},
		{`[\]]`, "]"}, {"[", "["}, {"[ab", "a"}, {"a[", "a"}, {`\`, `\`}, {`a\`, `a\`},
		{`\*`, "*"}, {`\*`, "x"}, {`\a`, "a"}, {"[a-\xff]", "\x80"}, {"[a-\xff]", "b"},
		{"[\x80-\xff]", "\x90"}, {"\xff", "\xef\xbf\xbd"},
	}
	for _, name := range []string{"baton/dev/cache/a-b/", "x[y]*?\\^-", "\xff\x00z", ""} {
		cases = append(cases, [2]string{escapeGlob(name), name}, [2]string{escapeGlob(name) + "*", name + "k"},
			[2]string{escapeGlob(name) + "*", "k" + name})
	}
	for i, c := range cases {
		if c[0] == "*" {
			continue
		}
		key := "glob-case"
		require.NoError(t, cl.Del(ctx, key).Err())
		require.NoError(t, cl.SAdd(ctx, key, c[1]).Err())
		var got []string
		var cursor uint64
		for {
			members, next, err := cl.SScan(ctx, key, cursor, c[0], 100).Result()
			require.NoError(t, err)
			got = append(got, members...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		assert.Equal(t, slices.Contains(got, c[1]), globMatch(c[0], c[1]), "case %d: pattern %q on %q", i, c[0], c[1])
	}
}

// TestCacheClearWithInvalidUTF8Name is the regression test of what
// FuzzEscapeGlob found: escapeGlob ranged over runes, so the Clear of cache
// "\xff" scanned for "\uFFFD" — it deleted the keys of cache "\uFFFD" and
// left its own.
func TestCacheClearWithInvalidUTF8Name(t *testing.T) {
	_, c := kitRedis(t)
	ctx := t.Context()
	ns := kitNS(t, "dev")
	bad, lookalike := kitCache(t, c, ns, "\xff"), kitCache(t, c, ns, "\uFFFD")
	require.NoError(t, bad.Set(ctx, "k", []byte("bad"), 0))
	require.NoError(t, lookalike.Set(ctx, "k", []byte("lookalike"), 0))

	require.NoError(t, bad.Clear(ctx))
	ok, err := bad.Exists(ctx, "k")
	require.NoError(t, err)
	assert.False(t, ok, "Clear must remove the cache's own key")
	v, err := lookalike.Get(ctx, "k")
	require.NoError(t, err, "Clear must not reach into another cache")
	assert.Equal(t, []byte("lookalike"), v)
}

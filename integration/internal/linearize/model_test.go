package linearize_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/integration/internal/linearize"
)

// Helpers that build Ops on a clock of whole milliseconds, [call, ret].

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func get(c, call, ret int, value string, version uint64) linearize.Op {
	return linearize.Op{Client: c, Kind: linearize.Get, Call: ms(call), Return: ms(ret), Outcome: linearize.OK, ReadValue: value, Version: version}
}

func getNone(c, call, ret int) linearize.Op {
	return linearize.Op{Client: c, Kind: linearize.Get, Call: ms(call), Return: ms(ret), Outcome: linearize.NotFound}
}

func set(c, call, ret int, value string, out linearize.Outcome) linearize.Op {
	return linearize.Op{Client: c, Kind: linearize.Set, Call: ms(call), Return: ms(ret), Value: value, Outcome: out}
}

func cas(c, call, ret int, value, expValue string, expVersion uint64, out linearize.Outcome, version uint64) linearize.Op {
	return linearize.Op{Client: c, Kind: linearize.CompareAndSet, Call: ms(call), Return: ms(ret), Value: value,
		ExpectedValue: expValue, ExpectedVersion: expVersion, Outcome: out, Version: version}
}

func TestCheckAcceptsLinearizable(t *testing.T) {
	cases := map[string][]linearize.Op{
		"empty": nil,
		"sequential": {
			getNone(0, 0, 1),
			cas(0, 2, 3, "a", "", 0, linearize.OK, 10),
			get(1, 4, 5, "a", 10),
			set(1, 6, 7, "b", linearize.OK),
			get(0, 8, 9, "b", 11),
			cas(0, 10, 11, "c", "b", 11, linearize.OK, 12),
			cas(1, 12, 13, "d", "b", 11, linearize.Conflict, 0),
		},
		"concurrent read sees either value": {
			set(0, 0, 1, "a", linearize.OK),
			set(0, 2, 6, "b", linearize.OK),
			get(1, 3, 4, "a", 10), // b not yet applied
			get(2, 3, 5, "b", 11), // b applied
		},
		"concurrent writes in either order": {
			set(0, 0, 5, "a", linearize.OK),
			set(1, 0, 5, "b", linearize.OK),
			get(2, 6, 7, "a", 11), // b went first
		},
		"unknown write applied long after its call": {
			set(0, 0, 1, "a", linearize.OK),
			set(1, 2, 3, "b", linearize.Unknown),
			get(0, 4, 5, "a", 10),
			get(0, 20, 21, "b", 11),
		},
		"unknown write never applied": {
			set(0, 0, 1, "a", linearize.OK),
			set(1, 2, 3, "b", linearize.Unknown),
			get(0, 30, 31, "a", 10),
		},
		"unknown cas that applied": {
			getNone(0, 0, 1),
			set(0, 2, 3, "a", linearize.OK),
			get(0, 4, 5, "a", 10),
			cas(1, 6, 7, "b", "a", 10, linearize.Unknown, 0),
			get(2, 8, 9, "b", 11),
		},
		"conflict explained by an unread unknown write": {
			set(0, 0, 1, "a", linearize.OK),
			get(1, 2, 3, "a", 10),
			set(2, 4, 5, "x", linearize.Unknown), // nobody reads x
			cas(1, 6, 7, "b", "a", 10, linearize.Conflict, 0),
			set(2, 8, 9, "c", linearize.OK),
			get(1, 10, 11, "c", 12),
		},
		"unknown gets are left out": {
			set(0, 0, 1, "a", linearize.OK),
			{Client: 1, Kind: linearize.Get, Call: ms(2), Return: ms(3), Outcome: linearize.Unknown},
		},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			res := linearize.Check(ops, 10*time.Second)
			assert.Equal(t, porcupine.Ok, res.Verdict)
			assert.Empty(t, res.Inconsistent)
			assert.Zero(t, res.Violations())
		})
	}
}

// TestCheckRejectsBroken shows the model failing the histories of broken
// stores: each is what a specific defect produces.
func TestCheckRejectsBroken(t *testing.T) {
	cases := map[string][]linearize.Op{
		"stale read after an acknowledged write": {
			set(0, 0, 1, "a", linearize.OK),
			set(0, 2, 3, "b", linearize.OK),
			get(1, 4, 5, "a", 10),
		},
		"cas succeeded against an overwritten version": {
			set(0, 0, 1, "a", linearize.OK),
			get(0, 2, 3, "a", 10),
			set(1, 4, 5, "b", linearize.OK),
			cas(0, 6, 7, "c", "a", 10, linearize.OK, 12),
		},
		"acknowledged write lost": {
			set(0, 0, 1, "a", linearize.OK),
			getNone(1, 2, 3),
		},
		"read of a value nobody wrote": {
			set(0, 0, 1, "a", linearize.OK),
			get(1, 2, 3, "z", 10),
		},
		"write reported as conflict but applied": {
			set(0, 0, 1, "a", linearize.OK),
			get(0, 2, 3, "a", 10),
			cas(0, 4, 5, "b", "a", 10, linearize.Conflict, 0),
			get(1, 6, 7, "b", 11),
		},
		"spurious conflict": {
			set(0, 0, 1, "a", linearize.OK),
			get(0, 2, 3, "a", 10),
			cas(0, 4, 5, "b", "a", 10, linearize.Conflict, 0),
			get(1, 6, 7, "a", 10),
		},
		"spurious conflict before an unread write was called": {
			set(0, 0, 1, "a", linearize.OK),
			get(0, 2, 3, "a", 10),
			cas(0, 4, 5, "b", "a", 10, linearize.Conflict, 0),
			set(1, 6, 7, "x", linearize.Unknown), // left out, but too late to excuse the conflict
			get(1, 8, 9, "a", 10),
		},
		"version went backwards": {
			set(0, 0, 1, "a", linearize.OK),
			get(0, 2, 3, "a", 10),
			cas(0, 4, 5, "b", "a", 10, linearize.OK, 9),
		},
		"reads go back in time": {
			set(0, 0, 1, "a", linearize.OK),
			set(1, 0, 10, "b", linearize.OK),
			get(2, 2, 3, "b", 11),
			get(2, 4, 5, "a", 10),
		},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			res := linearize.Check(ops, 10*time.Second)
			assert.Equal(t, porcupine.Illegal, res.Verdict)
			assert.Equal(t, 1, res.Violations())
			// The rejected history can be looked at.
			path := filepath.Join(t.TempDir(), "history.html")
			require.NoError(t, res.Visualize(path))
			assert.FileExists(t, path)
		})
	}
}

func TestCheckInconsistentVersions(t *testing.T) {
	res := linearize.Check([]linearize.Op{
		set(0, 0, 1, "a", linearize.OK),
		get(0, 2, 3, "a", 10),
		get(1, 4, 5, "a", 11),
	}, 10*time.Second)
	assert.Equal(t, []string{`value "a" seen at versions 10 and 11`}, res.Inconsistent)
	assert.Equal(t, 1, res.Violations())

	res = linearize.Check([]linearize.Op{
		set(0, 0, 1, "a", linearize.OK),
		get(0, 2, 3, "a", 10),
		set(0, 4, 5, "b", linearize.OK),
		get(1, 6, 7, "b", 10),
	}, 10*time.Second)
	assert.Equal(t, []string{`version 10 seen with values "a" and "b"`}, res.Inconsistent)
}

func TestCheckLeavesOutUnreadUnknownWrites(t *testing.T) {
	res := linearize.Check([]linearize.Op{
		set(0, 0, 1, "a", linearize.OK),
		set(1, 2, 3, "x", linearize.Unknown),
		set(2, 2, 3, "y", linearize.Unknown),
		get(0, 4, 5, "y", 11),
	}, 10*time.Second)
	assert.Equal(t, porcupine.Ok, res.Verdict)
	assert.Equal(t, 3, res.Checked)
	assert.Equal(t, 1, res.Left)
}

func TestRecorder(t *testing.T) {
	r := linearize.NewRecorder()
	op := r.Begin(0, linearize.Get)
	require.NoError(t, r.EndGet(op, backends.ConfigItem{}, fmt.Errorf("get: %w", backends.ErrNotFound)))
	op = r.Begin(1, linearize.Set)
	op.Value = "a"
	require.NoError(t, r.EndSet(op, nil))
	op = r.Begin(1, linearize.CompareAndSet)
	op.Value, op.ExpectedValue, op.ExpectedVersion = "b", "a", 7
	require.NoError(t, r.EndCompareAndSet(op, backends.ConfigItem{}, fmt.Errorf("cas: %w", backends.ErrConflict)))
	op = r.Begin(2, linearize.Set)
	op.Value = "c"
	require.NoError(t, r.EndSet(op, fmt.Errorf("set: %w", backends.ErrUnavailable)))
	op = r.Begin(2, linearize.Get)
	err := r.EndGet(op, backends.ConfigItem{}, fmt.Errorf("get: %w", backends.ErrClosed))
	require.ErrorIs(t, err, backends.ErrClosed, "a closed component is not an open outcome")

	ops := r.Ops()
	require.Len(t, ops, 5)
	want := []linearize.Outcome{linearize.NotFound, linearize.OK, linearize.Conflict, linearize.Unknown, linearize.Unknown}
	for i, op := range ops {
		assert.Equal(t, want[i], op.Outcome, "op %d: %s", i, op)
		assert.LessOrEqual(t, op.Call, op.Return)
	}
}

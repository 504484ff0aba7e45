package linearize

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// state is the key as the model holds it: whether it exists, its value,
// and the highest version known to have been written so far.
type state struct {
	exists bool
	value  string
	floor  uint64
}

// input is an Op prepared for the model.
type input struct {
	kind          Kind
	value         string // written by Set and CompareAndSet
	expectAbsent  bool   // CompareAndSet with expected version 0
	expectedValue string
	// version of value, when some call saw it; 0 when unknown.
	version uint64
	// excused: a conflict needs no explanation, because a write whose
	// value nobody read (and which was left out) may have come first.
	excused bool
}

// output is what the call answered.
type output struct {
	outcome   Outcome
	readValue string
	version   uint64
}

// model is one config key, initially absent.
var model = porcupine.Model{
	Init: func() any { return state{} },
	Step: func(s, in, out any) (bool, any) {
		return step(s.(state), in.(input), out.(output))
	},
	Hash: func(s any) uint64 {
		st := s.(state)
		h := fnv.New64a()
		_, _ = h.Write([]byte(st.value))
		_, _ = h.Write([]byte{boolByte(st.exists)})
		_, _ = h.Write(strconv.AppendUint(nil, st.floor, 10))
		return h.Sum64()
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		switch i.kind {
		case Get:
			if o.outcome == OK {
				return fmt.Sprintf("get() -> %q@%d", o.readValue, o.version)
			}
			return "get() -> " + o.outcome.String()
		case Set:
			return fmt.Sprintf("set(%q) -> %s", i.value, o.outcome)
		default:
			exp := "absent"
			if !i.expectAbsent {
				exp = strconv.Quote(i.expectedValue)
			}
			return fmt.Sprintf("cas(%q if %s) -> %s", i.value, exp, o.outcome)
		}
	},
	DescribeState: func(s any) string {
		st := s.(state)
		if !st.exists {
			return "absent"
		}
		return strconv.Quote(st.value)
	},
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func step(s state, in input, out output) (bool, state) {
	switch in.kind {
	case Get:
		if out.outcome == NotFound {
			return !s.exists, s
		}
		return s.exists && s.value == out.readValue, s
	case Set:
		return write(s, in)
	case CompareAndSet:
		match := (in.expectAbsent && !s.exists) || (!in.expectAbsent && s.exists && s.value == in.expectedValue)
		switch out.outcome {
		case OK:
			if !match {
				return false, s
			}
			return write(s, in)
		case Conflict:
			return !match || in.excused, s
		default: // Unknown: it wrote if it matched when it ran
			if match {
				return write(s, in)
			}
			return true, s
		}
	}
	return false, s
}

// write applies a write; versions must increase in linearization order.
func write(s state, in input) (bool, state) {
	if in.version != 0 {
		if in.version <= s.floor {
			return false, s
		}
		s.floor = in.version
	}
	s.exists, s.value = true, in.value
	return true, s
}

// Result is Check's verdict.
type Result struct {
	// Verdict is porcupine's: Ok, Illegal, or Unknown when the search ran
	// out of time (which is no pass).
	Verdict porcupine.CheckResult
	// Checked counts the Ops given to the search, Left those left out
	// (Gets and unread writes with an unknown outcome).
	Checked, Left int
	// Inconsistent lists contradictions between values and versions: one
	// value seen with two versions, or one version with two values.
	Inconsistent []string
	// Versions maps each value to the version calls saw it with.
	Versions map[string]uint64

	ops  []porcupine.Operation
	info *porcupine.LinearizationInfo
}

// Violations counts what Check found: one for a history the search
// rejected, plus each inconsistency.
func (r Result) Violations() int {
	n := len(r.Inconsistent)
	if r.Verdict == porcupine.Illegal {
		n++
	}
	return n
}

// Visualize writes porcupine's HTML view of a rejected history (its longest
// linearizable prefixes) to path. It does nothing for other verdicts.
func (r Result) Visualize(path string) error {
	if r.info == nil {
		return nil
	}
	return porcupine.VisualizePath(model, *r.info, path)
}

// Check searches for a linearization of ops, the calls on one key that
// starts absent, for at most timeout (per search; a rejected history is
// searched a second time for the visualization).
func Check(ops []Op, timeout time.Duration) Result {
	res := Result{Versions: map[string]uint64{}}
	byVersion := map[uint64]string{}
	seen := func(value string, version uint64) {
		if v, ok := res.Versions[value]; ok && v != version {
			res.Inconsistent = append(res.Inconsistent, fmt.Sprintf("value %q seen at versions %d and %d", value, v, version))
		} else {
			res.Versions[value] = version
		}
		if v, ok := byVersion[version]; ok && v != value {
			res.Inconsistent = append(res.Inconsistent, fmt.Sprintf("version %d seen with values %q and %q", version, v, value))
		} else {
			byVersion[version] = value
		}
	}
	read := map[string]bool{} // values some call read
	end := time.Duration(0)
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
		switch {
		case op.Kind == Get && op.Outcome == OK:
			seen(op.ReadValue, op.Version)
			read[op.ReadValue] = true
		case op.Kind == CompareAndSet:
			if op.Outcome == OK {
				seen(op.Value, op.Version)
			}
			if op.ExpectedVersion != 0 {
				seen(op.ExpectedValue, op.ExpectedVersion)
				read[op.ExpectedValue] = true
			}
		}
	}
	end++

	unreadSince := time.Duration(math.MaxInt64) // earliest call of a left-out write
	kept := make([]Op, 0, len(ops))
	for _, op := range ops {
		switch {
		case op.Outcome == Unknown && op.Kind == Get:
			res.Left++
		case op.Outcome == Unknown && !read[op.Value]:
			res.Left++
			unreadSince = min(unreadSince, op.Call)
		default:
			kept = append(kept, op)
		}
	}
	res.ops = make([]porcupine.Operation, 0, len(kept))
	for _, op := range kept {
		in := input{kind: op.Kind, value: op.Value, expectAbsent: op.ExpectedVersion == 0, expectedValue: op.ExpectedValue}
		if op.IsWrite() {
			in.version = res.Versions[op.Value]
		}
		ret := op.Return
		if op.Outcome == Unknown {
			ret = end
		}
		in.excused = op.Kind == CompareAndSet && op.Outcome == Conflict && unreadSince <= op.Return
		res.ops = append(res.ops, porcupine.Operation{
			ClientId: op.Client,
			Input:    in,
			Call:     int64(op.Call),
			Output:   output{outcome: op.Outcome, readValue: op.ReadValue, version: op.Version},
			Return:   int64(ret),
		})
	}
	res.Checked = len(res.ops)
	slices.Sort(res.Inconsistent)
	res.Inconsistent = slices.Compact(res.Inconsistent)

	res.Verdict = porcupine.CheckOperationsTimeout(model, res.ops, timeout)
	if res.Verdict == porcupine.Illegal {
		_, info := porcupine.CheckOperationsVerbose(model, res.ops, timeout)
		res.info = &info
	}
	return res
}

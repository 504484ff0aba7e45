package typed

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Codec turns values of type T into bytes and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte) (T, error)
}

// JSON encodes with encoding/json. It is the codec New uses when given none.
type JSON[T any] struct{}

// Marshal encodes v as JSON.
func (JSON[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new T.
func (JSON[T]) Unmarshal(data []byte) (T, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}

// Proto encodes protobuf messages in their binary wire format. T is the
// message pointer type, e.g. Proto[*pb.User]{}.
type Proto[T proto.Message] struct {
	// New returns an empty message to decode into. Default: a new message
	// of T's type, found through protobuf reflection.
	New func() T
}

// Marshal encodes v deterministically (stable bytes for equal messages).
func (Proto[T]) Marshal(v T) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(v)
}

// Unmarshal decodes data into a new T.
func (c Proto[T]) Unmarshal(data []byte) (T, error) {
	var v T
	if c.New != nil {
		v = c.New()
	} else {
		if any(v) == nil {
			// T is an interface type: there is no concrete type to build.
			return v, fmt.Errorf("typed: proto codec: cannot create a %T value; set Proto.New", (*T)(nil))
		}
		// Generated message types answer ProtoReflect on a nil pointer,
		// which is enough to build an empty message of the same type.
		m, ok := v.ProtoReflect().Type().New().Interface().(T)
		if !ok {
			return v, fmt.Errorf("typed: proto codec: cannot create %T; set Proto.New", v)
		}
		v = m
	}
	return v, proto.Unmarshal(data, v)
}

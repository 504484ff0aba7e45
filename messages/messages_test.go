package messages_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// Registered together with protoactor's own messages, as in a node: a
	// clash of proto names or file paths would panic at init.
	_ "github.com/asynkron/protoactor-go/actor"
	_ "github.com/asynkron/protoactor-go/remote"

	_ "github.com/baton-go/baton/messages/cache/v1"
	_ "github.com/baton-go/baton/messages/config/v1"
	_ "github.com/baton-go/baton/messages/connector/v1"
	_ "github.com/baton-go/baton/messages/discovery/v1"
	_ "github.com/baton-go/baton/messages/election/v1"
	_ "github.com/baton-go/baton/messages/lock/v1"
	_ "github.com/baton-go/baton/messages/status/v1"
	_ "github.com/baton-go/baton/messages/subscription/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var components = []string{"status", "subscription", "cache", "lock", "election", "discovery", "config", "connector"}

// batonFiles returns the registered files of Baton's proto packages.
func batonFiles(t *testing.T) []protoreflect.FileDescriptor {
	t.Helper()
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "baton.") {
			files = append(files, fd)
		}
		return true
	})
	require.NotEmpty(t, files)
	return files
}

// TestEveryProtoFileIsChecked keeps the other tests honest: every .proto
// under proto/ must be registered here, i.e. its Go package imported above.
func TestEveryProtoFileIsChecked(t *testing.T) {
	var onDisk []string
	err := filepath.WalkDir("proto", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".proto") {
			onDisk = append(onDisk, filepath.ToSlash(strings.TrimPrefix(path, "proto"+string(filepath.Separator))))
		}
		return err
	})
	require.NoError(t, err)
	var registered []string
	for _, fd := range batonFiles(t) {
		registered = append(registered, fd.Path())
	}
	assert.ElementsMatch(t, onDisk, registered)
}

func TestPackagesAndGoPackages(t *testing.T) {
	seen := map[string]bool{}
	for _, fd := range batonFiles(t) {
		pkg := string(fd.Package())
		seen[pkg] = true
		parts := strings.Split(pkg, ".")
		require.Len(t, parts, 3, "package %s must be baton.<component>.v1", pkg)
		component, version := parts[1], parts[2]
		assert.Equal(t, "v1", version, pkg)
		assert.True(t, strings.HasPrefix(fd.Path(), "baton/"+component+"/"+version+"/"),
			"file %s must sit in the directory of its package", fd.Path())

		opts, ok := fd.Options().(*descriptorpb.FileOptions)
		require.True(t, ok, "options of %s", fd.Path())
		goPkg := opts.GetGoPackage()
		assert.Equal(t, "github.com/baton-go/baton/messages/"+component+"/"+version+";"+component+version, goPkg,
			"go_package of %s", fd.Path())
	}
	for _, c := range components {
		assert.True(t, seen["baton."+c+".v1"], "package baton.%s.v1 is not registered", c)
	}
}

// TestRequestResponsePairs checks that every XRequest has an XResponse in
// the same package, and that every response carries its status in field 1.
func TestRequestResponsePairs(t *testing.T) {
	pairs := 0
	for _, fd := range batonFiles(t) {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			name := string(md.Name())
			switch {
			case strings.HasSuffix(name, "Request"):
				resp := md.FullName().Parent().Append(protoreflect.Name(strings.TrimSuffix(name, "Request") + "Response"))
				_, err := protoregistry.GlobalFiles.FindDescriptorByName(resp)
				assert.NoError(t, err, "%s has no %s", md.FullName(), resp)
				pairs++
			case strings.HasSuffix(name, "Response"):
				req := md.FullName().Parent().Append(protoreflect.Name(strings.TrimSuffix(name, "Response") + "Request"))
				_, err := protoregistry.GlobalFiles.FindDescriptorByName(req)
				assert.NoError(t, err, "%s has no %s", md.FullName(), req)

				status := md.Fields().ByNumber(1)
				if assert.NotNil(t, status, "%s has no field 1", md.FullName()) {
					assert.Equal(t, protoreflect.Name("status"), status.Name(), md.FullName())
					if assert.NotNil(t, status.Message(), "%s.status", md.FullName()) {
						assert.Equal(t, protoreflect.FullName("baton.status.v1.Status"), status.Message().FullName())
					}
				}
			}
		}
	}
	assert.Positive(t, pairs)
}

// TestSubscriptionFields checks the shape shared by every subscription:
// subscription_id is a string, subscriber is a Subscriber, and every event
// of a subscription (a message with a subscription_id that is not a
// request) carries its uint64 seq.
func TestSubscriptionFields(t *testing.T) {
	for _, fd := range batonFiles(t) {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			if f := md.Fields().ByName("subscription_id"); f != nil {
				assert.Equal(t, protoreflect.StringKind, f.Kind(), "%s.subscription_id", md.FullName())
				if !strings.HasSuffix(string(md.Name()), "Request") {
					seq := md.Fields().ByName("seq")
					if assert.NotNil(t, seq, "event %s has no seq", md.FullName()) {
						assert.Equal(t, protoreflect.Uint64Kind, seq.Kind(), "%s.seq", md.FullName())
					}
				}
			}
			if f := md.Fields().ByName("subscriber"); f != nil && assert.NotNil(t, f.Message(), "%s.subscriber", md.FullName()) {
				assert.Equal(t, protoreflect.FullName("baton.subscription.v1.Subscriber"), f.Message().FullName(),
					"%s.subscriber", md.FullName())
			}
		}
	}
}

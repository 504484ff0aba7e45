package statusv1

import "github.com/baton-go/baton/backends"

// CODE_UNAUTHENTICATED stands for backends.ErrUnauthenticated. It is added
// to the code table of errors.go here, at its end, so that the change to
// the table stays one line for whoever edits errors.go next: move the entry
// into codeErrors (anywhere before CODE_INTERNAL) and delete this file. No
// error matches both ErrUnauthenticated and another entry of the table, so
// its position does not change any mapping.
func init() {
	codeErrors = append(codeErrors, struct {
		code Code
		err  error
	}{Code_CODE_UNAUTHENTICATED, backends.ErrUnauthenticated})
}

//go:build race

package integration

// raceEnabled: the tests run with -race, so the node helper is built with
// it too.
const raceEnabled = true

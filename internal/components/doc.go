// Package components holds the actors a runtime.Node starts: the connector
// supervisor and one actor per coordination component, with the pieces
// they share (subscription hub, backend gate, restart backoff). It is
// internal: applications address these actors through runtime.Node.PIDs and
// the messages of package messages. docs/actors.md describes how they work.
package components

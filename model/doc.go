// Package model defines the domain of wfevents: events, callers, the resources
// whose expressions decide what an event starts, and the Workflows it creates.
//
// The package imports neither net/http nor client-go. Adapters around it (the
// HTTP server, the Kubernetes client) translate to and from these types, and
// cmd/wfevents wires them together.
package model

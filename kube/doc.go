// Package kube is the Kubernetes adapter of wfevents. It reads templates from
// the cluster through shared informers on the dynamic client, converts them to
// model types, and creates Workflows.
//
// The same code runs against a real API server and against client-go's fake
// dynamic client, which backs the embedded mode.
package kube

package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain stops the kube-apiserver of the cluster tests after the last
// test, if one of them started it.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := stopSharedCluster(code != 0); err != nil {
		fmt.Fprintf(os.Stderr, "stop the shared test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Command etcd runs the etcd server that the wfevents integration tests
// start on loopback. It is etcd's own entry point built as a Go module
// dependency, so no prebuilt release binary has to be downloaded.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

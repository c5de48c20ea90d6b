// Command localcluster runs a local Kubernetes API server for trying wfevents
// in cluster mode without a cluster.
//
// Usage:
//
//	go run ./kube/kubetest/localcluster --dir DIR
//
// It starts etcd and kube-apiserver v1.37.2 on random free ports of
// 127.0.0.1 with package kubetest, installs the minimal Argo CRDs, and writes
// an admin kubeconfig, with the CA and a token in group system:masters, to
// DIR/kubeconfig. It runs until SIGINT or SIGTERM, then stops both processes,
// deletes their data and removes DIR/kubeconfig. Nothing else runs: there is
// no controller manager, scheduler or kubelet, so no Pod ever runs and no
// Workflow is executed, but objects can be created, read and listed, and
// tokens can be created with "kubectl create token".
//
// The binaries come from `make kube-binaries` (tools/kube/build.sh).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/wfevents/wfevents/kube/kubetest"
)

// contextName names the cluster, user and context in the kubeconfig.
const contextName = "wfevents-local"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("localcluster", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", "", "`directory` to write the kubeconfig to, created if missing (required)")
	startTimeout := flags.Duration("start-timeout", kubetest.DefaultStartTimeout, "how long to wait for etcd and kube-apiserver to become ready")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: localcluster takes only the flags --dir and --start-timeout", flags.Arg(0))
	}
	if *dir == "" {
		return errors.New("missing --dir: name a directory for the kubeconfig, for example --dir /tmp/wfevents-cluster")
	}
	kubeconfigPath, err := filepath.Abs(filepath.Join(*dir, "kubeconfig"))
	if err != nil {
		return fmt.Errorf("resolve the kubeconfig path in %s: %w", *dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfigPath), 0o700); err != nil {
		return fmt.Errorf("create --dir: %w", err)
	}

	// Catch signals before the start, so a Ctrl-C during it still stops
	// whatever has started.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	fmt.Fprintf(stdout, "localcluster: starting etcd %s and kube-apiserver %s from %s\n", kubetest.EtcdVersion, kubetest.KubeVersion, kubetest.BinDir())
	started := time.Now()
	cluster, stopCluster, err := kubetest.StartShared(kubetest.Options{StartTimeout: *startTimeout})
	if err != nil {
		return fmt.Errorf("start the cluster: %w", err)
	}
	// stopAll stops kube-apiserver, then etcd, each by its PID (SIGTERM,
	// then SIGKILL after a grace period), and deletes the cluster's
	// directory.
	stopAll := func() error {
		fmt.Fprintln(stdout, "localcluster: stopping kube-apiserver and etcd")
		if err := stopCluster(); err != nil {
			return fmt.Errorf("stop the cluster: %w", err)
		}
		fmt.Fprintln(stdout, "localcluster: stopped")
		return nil
	}

	serveErr := serve(ctx, cluster, kubeconfigPath, started, stdout)
	return errors.Join(serveErr, stopAll())
}

// serve installs the CRDs, writes the kubeconfig and waits for ctx, then
// removes the kubeconfig. The caller stops the cluster.
func serve(ctx context.Context, cluster *kubetest.Cluster, kubeconfigPath string, started time.Time, stdout io.Writer) error {
	// StartShared takes no context, so a signal during the start is seen
	// only here.
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "localcluster: signal received during the start")
		return nil
	}
	if err := kubetest.CreateArgoCRDs(ctx, cluster.AdminConfig()); err != nil {
		return fmt.Errorf("install the Argo CRDs: %w", err)
	}

	kubeconfig, err := writeKubeconfig(cluster, kubeconfigPath)
	if err != nil {
		return err
	}
	defer removeKubeconfig(kubeconfigPath, kubeconfig, stdout)

	printUsage(stdout, cluster, kubeconfigPath, time.Since(started))

	<-ctx.Done()
	fmt.Fprintln(stdout, "localcluster: signal received")
	return nil
}

// writeKubeconfig writes an admin kubeconfig for cluster to path, readable
// only by the owner because it contains the admin token, and returns its
// content.
func writeKubeconfig(cluster *kubetest.Cluster, path string) ([]byte, error) {
	config := clientcmdapi.NewConfig()
	config.Clusters[contextName] = &clientcmdapi.Cluster{
		Server:                   cluster.URL,
		CertificateAuthorityData: cluster.CAData,
	}
	config.AuthInfos[contextName] = &clientcmdapi.AuthInfo{Token: cluster.AdminToken}
	config.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: contextName}
	config.CurrentContext = contextName

	content, err := clientcmd.Write(*config)
	if err != nil {
		return nil, fmt.Errorf("encode the kubeconfig: %w", err)
	}
	// Write beside the target and rename, so a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return nil, fmt.Errorf("write the kubeconfig: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write the kubeconfig: %w", err)
	}
	return content, nil
}

// removeKubeconfig removes the kubeconfig at path unless its content is no
// longer the one written, for example because another localcluster with the
// same --dir replaced it.
func removeKubeconfig(path string, written []byte, stdout io.Writer) {
	current, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(current, written) {
		return
	}
	if err := os.Remove(path); err != nil {
		fmt.Fprintf(stdout, "localcluster: remove the kubeconfig: %v\n", err)
		return
	}
	fmt.Fprintf(stdout, "localcluster: removed %s\n", path)
}

func printUsage(w io.Writer, cluster *kubetest.Cluster, kubeconfigPath string, startDuration time.Duration) {
	kubectl := filepath.Join(kubetest.BinDir(), "kubectl")
	kubectlNote := "kubectl " + kubetest.KubeVersion + " from `make kube-binaries`"
	if _, err := os.Stat(kubectl); err != nil {
		kubectlNote = "not built yet: run `make kube-binaries`, or use any kubectl on your PATH"
	}

	fmt.Fprintf(w, `localcluster: kube-apiserver %s ready at %s in %.1f s (etcd at %s)
localcluster: installed the CRDs workflows, workflowtemplates, clusterworkflowtemplates and workfloweventbindings (argoproj.io/v1alpha1)
localcluster: wrote %s for user %s in group system:masters

Use it from another shell:

  export KUBECONFIG=%s
  export PATH=%s:$PATH   # %s
  kubectl get crds

Component logs and etcd data are under %s, which is deleted on stop.
Press Ctrl-C, or run "kill %d", to stop kube-apiserver and etcd.
`,
		kubetest.KubeVersion, cluster.URL, startDuration.Seconds(), cluster.EtcdURL,
		kubeconfigPath, kubetest.AdminUser,
		kubeconfigPath, kubetest.BinDir(), kubectlNote,
		cluster.Dir, os.Getpid())
}

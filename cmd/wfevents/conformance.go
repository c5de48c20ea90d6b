package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wfevents/wfevents/conformance"
)

// errConformanceFailed reports that a check failed. The results are already
// printed, and the exit status is 1 as for check.
var errConformanceFailed = fmt.Errorf("conformance checks failed: %w", errCheckFailed)

const conformanceUsage = `Usage: wfevents conformance --url URL --token TOKEN [flags]

Conformance runs the checks of the wfevents contract against a running
events server, wfevents or another implementation, and prints one line per
check, PASS, FAIL with what was sent, received and expected, or SKIP with the
reason, then a summary. The exit status is 1 when a check failed, and 2 for
invalid flags or when the server cannot be reached.

Only the URL receives events. Checks of expressions, parameters and matching
need the suite's templates in --namespace: with --kubeconfig the suite
installs them and deletes them afterwards, else serve
conformance/testdata/fixtures. They also need a dry run or a list of created
Workflows: wfevents offers both, and --kubeconfig reads Workflows from the
cluster. The pipeline checks need an in-process server and are skipped here.

Flags:
`

// conformanceOptions are the flags of "wfevents conformance".
type conformanceOptions struct {
	target       conformance.Target
	kubeconfig   string
	run          string
	list         bool
	listMarkdown bool
}

func parseConformanceFlags(args []string, stderr io.Writer) (conformanceOptions, error) {
	var opts conformanceOptions
	target := &opts.target
	flags := flag.NewFlagSet("wfevents conformance", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), conformanceUsage)
		flags.PrintDefaults()
	}

	flags.StringVar(&target.URL, "url", "", "base `URL` of the server under test, such as http://127.0.0.1:2746")
	flags.StringVar(&target.Token, "token", "", "bearer `token` that may send events to --namespace, and cluster-scoped ones for the cluster-scoped routes")
	flags.StringVar(&target.Namespace, "namespace", conformance.DefaultNamespace, "`namespace` the events go to and the suite's templates live in")
	flags.StringVar(&target.ScopedToken, "scoped-token", "", "bearer `token` limited to --scoped-namespace, for the checks that such a token stays there")
	flags.StringVar(&target.ScopedNamespace, "scoped-namespace", "", "the one `namespace` of --scoped-token")
	flags.StringVar((*string)(&target.Profile), "profile", string(conformance.ProfileWFEvents), "what to expect: wfevents, or argo for Argo Workflows' server, where known differences are expected failures")
	flags.Int64Var(&target.MaxBodyBytes, "max-body-bytes", conformance.DefaultMaxBodyBytes, "the server's body size limit in `bytes`")
	flags.DurationVar(&target.WaitTimeout, "wait", conformance.DefaultWaitTimeout, "how long to wait for a Workflow to appear or installed templates to load")
	flags.StringVar(&opts.kubeconfig, "kubeconfig", "", "kubeconfig `file` of the server's cluster, to install the suite's templates and read Workflows")
	flags.StringVar(&opts.run, "run", "", "run only the checks whose ID matches the `regexp`")
	flags.BoolVar(&opts.list, "list", false, "list the checks and exit")
	flags.BoolVar(&opts.listMarkdown, "list-markdown", false, "list the checks as a Markdown table and exit")

	if err := parseFlags(flags, args, stderr, ""); err != nil {
		return opts, err
	}
	if opts.list || opts.listMarkdown {
		return opts, nil
	}
	if target.URL == "" || target.Token == "" {
		fmt.Fprintln(stderr, "wfevents conformance: missing --url or --token: give the server's URL and a bearer token for it")
		return opts, errUsage
	}
	return opts, nil
}

// runConformance runs the conformance checks against --url, or lists them.
func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseConformanceFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	switch {
	case opts.listMarkdown:
		return conformance.Markdown(stdout)
	case opts.list:
		for _, check := range conformance.Checks() {
			fmt.Fprintf(stdout, "%-40s %s\n", check.ID, check.Statement)
		}
		return nil
	}

	// Select the checks, and reach the cluster when there is a kubeconfig.
	runOptions := conformance.Options{Output: stdout}
	if opts.run != "" {
		pattern, err := regexp.Compile(opts.run)
		if err != nil {
			fmt.Fprintf(stderr, "wfevents conformance: invalid --run %q: %v\n", opts.run, err)
			return errUsage
		}
		runOptions.Match = pattern.MatchString
	}
	if opts.kubeconfig != "" {
		cluster, err := kubernetesAccess(opts.kubeconfig)
		if err != nil {
			return err
		}
		opts.target.InstallTemplates = cluster.InstallTemplates
		opts.target.ListWorkflows = cluster.ListWorkflows
	}

	report, err := conformance.Run(ctx, opts.target, runOptions)
	if err != nil {
		return fmt.Errorf("conformance: %w", err)
	}
	if report.Failed() {
		return errConformanceFailed
	}
	return nil
}

// kubernetesAccess connects to the cluster of a kubeconfig file.
func kubernetesAccess(kubeconfig string) (*conformance.Kubernetes, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("build a client for %s: %w", config.Host, err)
	}
	return conformance.NewKubernetes(client), nil
}

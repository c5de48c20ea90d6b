package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Check is one statement of the contract and the program that tests it.
type Check struct {
	// ID names the check as group.case, such as body.invalid-json.
	ID string

	// Statement is the behaviour the check expects, as one sentence.
	Statement string

	// Needs lists the requirements beyond the URL and the token, or is
	// empty.
	Needs string

	// ArgoDiffers, when set, describes how Argo's server is known to differ. In
	// the argo profile a failure of the check is an expected failure.
	ArgoDiffers string

	// Beyond marks behaviour that only wfevents offers, so the argo
	// profile skips the check.
	Beyond bool

	run func(ctx context.Context, r *run) error
}

// Checks returns every check, in the order Run runs them.
func Checks() []Check {
	return slices.Clone(checks)
}

// Status is the result of one check.
type Status string

// The statuses a check can end with.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"

	// XFail is a failure of a check whose behaviour Argo's server is known
	// not to have, in the argo profile. It does not fail the run.
	XFail Status = "XFAIL"

	// XPass is a pass of such a check, in the argo profile.
	XPass Status = "XPASS"
)

// Result is the outcome of one check.
type Result struct {
	ID     string
	Status Status

	// Detail describes what was sent and received for a failure, and the
	// reason for a skip. It is empty for a pass.
	Detail string
}

// String formats the result as the line Run prints.
func (r Result) String() string {
	if r.Detail == "" {
		return fmt.Sprintf("%s %s", r.Status, r.ID)
	}
	return fmt.Sprintf("%s %s: %s", r.Status, r.ID, r.Detail)
}

// Report holds the results of a run, in the order the checks ran.
type Report struct {
	Results []Result
}

// Count returns how many results have status.
func (r Report) Count(status Status) int {
	n := 0
	for _, result := range r.Results {
		if result.Status == status {
			n++
		}
	}
	return n
}

// Failed reports whether any check failed. Expected failures in the argo
// profile do not count.
func (r Report) Failed() bool { return r.Count(Fail) > 0 }

// Summary returns the closing line: the count of each status, with the
// expected failures and unexpected passes only when there are any.
func (r Report) Summary() string {
	summary := fmt.Sprintf("%d passed, %d failed, %d skipped", r.Count(Pass), r.Count(Fail), r.Count(Skip))
	if xfail, xpass := r.Count(XFail), r.Count(XPass); xfail+xpass > 0 {
		summary += fmt.Sprintf(", %d expected failures, %d unexpected passes", xfail, xpass)
	}
	return summary
}

// Options configures a run.
type Options struct {
	// Output receives one line per check and the summary. Nil discards.
	Output io.Writer

	// Match selects the checks to run by ID. Nil runs them all.
	Match func(id string) bool
}

// Run runs the selected checks against target, in the order of [Checks],
// and prints each result and the summary to opts.Output.
//
// It returns an error only when the target is invalid or the suite could
// not set up: the server did not respond, or installing its templates
// failed. Failed checks are in the report.
func Run(ctx context.Context, target Target, opts Options) (Report, error) {
	target, err := target.withDefaults()
	if err != nil {
		return Report{}, err
	}
	output := opts.Output
	if output == nil {
		output = io.Discard
	}

	r := newRun(target)
	defer r.cleanup()
	if err := r.setup(ctx); err != nil {
		return Report{}, err
	}

	var report Report
	for _, check := range checks {
		if opts.Match != nil && !opts.Match(check.ID) {
			continue
		}
		result := r.runCheck(ctx, check)
		report.Results = append(report.Results, result)
		fmt.Fprintln(output, result)
	}
	fmt.Fprintln(output, report.Summary())
	return report, ctx.Err()
}

// runCheck runs one check and turns its error into a result.
func (r *run) runCheck(ctx context.Context, check Check) Result {
	result := Result{ID: check.ID, Status: Pass}
	if check.Beyond && r.target.Profile == ProfileArgo {
		result.Status, result.Detail = Skip, "Argo's server does not offer this; it is beyond the events API"
		return result
	}

	err := check.run(ctx, r)
	var skip *skipError
	switch {
	case err == nil:
	case errors.As(err, &skip):
		result.Status, result.Detail = Skip, skip.reason
	default:
		result.Status, result.Detail = Fail, err.Error()
	}

	if check.ArgoDiffers != "" && r.target.Profile == ProfileArgo {
		switch result.Status {
		case Fail:
			result.Status = XFail
			result.Detail += " (known difference: " + check.ArgoDiffers + ")"
		case Pass:
			result.Status, result.Detail = XPass, "known difference did not show: "+check.ArgoDiffers
		}
	}
	return result
}

// skipError ends a check whose needs are not met.
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

// skipf ends a check as skipped, with the reason.
func skipf(format string, args ...any) error {
	return &skipError{reason: fmt.Sprintf(format, args...)}
}

// Markdown writes the checks as a Markdown table, for the README.
func Markdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| Check | Contract | Needs | Argo's server |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, check := range checks {
		argo := ""
		switch {
		case check.Beyond:
			argo = "skipped: wfevents only"
		case check.ArgoDiffers != "":
			argo = "differs: " + check.ArgoDiffers
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", check.ID, escapeCell(check.Statement), escapeCell(check.Needs), escapeCell(argo))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// escapeCell keeps a pipe inside a table cell from splitting it.
func escapeCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

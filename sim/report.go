package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pmezard/go-difflib/difflib"
)

// WriteReportJSON writes report as indented JSON, the form of an expected
// file.
func WriteReportJSON(w io.Writer, report Report) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	encoder.SetEscapeHTML(false)
	return encoder.Encode(report)
}

// ReadReportJSON reads a report that WriteReportJSON wrote.
func ReadReportJSON(r io.Reader) (Report, error) {
	var report Report
	decoder := json.NewDecoder(r)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&report); err != nil {
		return Report{}, fmt.Errorf("invalid replay report: %w: write it with replay --update", err)
	}
	return report, nil
}

// WriteReportTable writes report as a table with one row per created
// Workflow, or one row for an event that created none.
func WriteReportTable(w io.Writer, report Report) error {
	table := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "LINE\tSTATUS\tEVENT ID\tMATCHED\tWORKFLOW\tPARAMETERS\tERRORS")
	for _, event := range report.Events {
		status := "-"
		if event.Status != 0 {
			status = strconv.Itoa(event.Status)
		}
		matched := strconv.Itoa(len(event.Matched))
		// An expression error spans lines, which would break the table.
		errors := strings.Join(strings.Fields(strings.Join(event.Errors, "; ")), " ")
		if len(event.Workflows) == 0 {
			fmt.Fprintf(table, "%d\t%s\t%s\t%s\t-\t-\t%s\n", event.Line, status, dash(event.EventID), matched, dash(errors))
			continue
		}
		for i, wf := range event.Workflows {
			name := wf.Name
			if wf.Existing {
				name += " (existing)"
			}
			if i > 0 {
				fmt.Fprintf(table, "\t\t\t\t%s\t%s\t\n", name, formatParameters(wf.Parameters))
				continue
			}
			fmt.Fprintf(table, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", event.Line, status, dash(event.EventID), matched, name, formatParameters(wf.Parameters), dash(errors))
		}
	}
	return table.Flush()
}

// maxTableValue clips parameter values in the table. The JSON report keeps
// them whole.
const maxTableValue = 40

func formatParameters(parameters []Parameter) string {
	if len(parameters) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(parameters))
	for _, parameter := range parameters {
		value := parameter.Value
		if len(value) > maxTableValue {
			value = value[:maxTableValue-3] + "..."
		}
		parts = append(parts, parameter.Name+"="+strconv.Quote(value))
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// DiffReports compares an expected report with the one a replay produced,
// event by event, and returns a readable description of every difference,
// or "" when they are equal.
func DiffReports(want, got Report) string {
	var out strings.Builder
	for i := range max(len(want.Events), len(got.Events)) {
		switch {
		case i >= len(got.Events):
			fmt.Fprintf(&out, "line %d (%s %s): expected, but the stream has no such request\n", want.Events[i].Line, want.Events[i].Method, want.Events[i].Path)
		case i >= len(want.Events):
			fmt.Fprintf(&out, "line %d (%s %s): replayed, but the expected file has no such event\n", got.Events[i].Line, got.Events[i].Method, got.Events[i].Path)
		default:
			if diff := diffEvents(want.Events[i], got.Events[i]); diff != "" {
				fmt.Fprintf(&out, "line %d (%s %s) differs (-expected +replayed):\n%s", got.Events[i].Line, got.Events[i].Method, got.Events[i].Path, diff)
			}
		}
	}
	return out.String()
}

// diffEvents returns a unified diff of the JSON forms of two results, as
// they appear in an expected file, or "" when the forms are equal.
func diffEvents(want, got EventResult) string {
	wantJSON, gotJSON := indentedJSON(want), indentedJSON(got)
	if wantJSON == gotJSON {
		return ""
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:       difflib.SplitLines(wantJSON),
		B:       difflib.SplitLines(gotJSON),
		Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("-%s\n+%s\n", wantJSON, gotJSON)
	}
	return diff
}

func indentedJSON(result EventResult) string {
	var buf strings.Builder
	encoder := json.NewEncoder(&buf)
	encoder.SetIndent("", "  ")
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(result); err != nil {
		return fmt.Sprintf("%+v\n", result)
	}
	return buf.String()
}

// CheckExpectations compares each request's inline expectation with its
// replayed result and returns one message per mismatch. report must hold
// the results of requests, in order.
func CheckExpectations(requests []Request, report Report) []string {
	var problems []string
	for i, req := range requests {
		if req.Expect == nil || i >= len(report.Events) {
			continue
		}
		result := report.Events[i]
		if req.Expect.Status != 0 && req.Expect.Status != result.Status {
			problem := fmt.Sprintf("line %d: status %d, expected %d", req.Line, result.Status, req.Expect.Status)
			if len(result.Errors) > 0 {
				problem += " (" + strings.Join(result.Errors, "; ") + ")"
			}
			problems = append(problems, problem)
		}
		if req.Expect.Resources == nil {
			continue
		}
		var created []string
		for _, wf := range result.Workflows {
			if !wf.Existing {
				created = append(created, wf.Resource)
			}
		}
		want := slices.Clone(req.Expect.Resources)
		slices.Sort(created)
		slices.Sort(want)
		if !slices.Equal(created, want) {
			problems = append(problems, fmt.Sprintf("line %d: Workflows from [%s], expected from [%s]", req.Line, strings.Join(created, ", "), strings.Join(want, ", ")))
		}
	}
	return problems
}

package sim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// MaxGridValues bounds the values of one grid, because every value of a
// sweep grid is one more simulation of the whole stream per value of the
// other grid.
const MaxGridValues = 1024

// MaxSweepSimulations bounds the pairs of pipeline size and worker count of
// one sweep, because each pair is one simulation of the whole stream, and
// two grids of MaxGridValues values would make about a million.
const MaxSweepSimulations = 4096

// SweepRow is the outcome of one simulation of a sweep.
type SweepRow struct {
	PipelineSize int
	Workers      int

	// Rejected is the number of 503 responses for a full pipeline.
	Rejected int

	// P99Delay is the 99th percentile of the delay from receipt to the
	// creation of a Workflow.
	P99Delay time.Duration

	MaxDepth int
}

// Sweep simulates arrivals once for every pair of a pipeline size in sizes
// and a worker count in workers, with the other settings of base. It
// returns one row per pair, ordered by pipeline size, then by worker count.
// Both lists are sorted and duplicates dropped first. An empty list means
// the value in base. Sweep returns an error, and simulates nothing, when
// the pairs are more than MaxSweepSimulations. The error of the first
// invalid pair names its value.
func Sweep(arrivals []Arrival, base Settings, sizes, workers []int) ([]SweepRow, error) {
	sizes = sortedUnique(sizes, base.PipelineSize)
	workers = sortedUnique(workers, base.Workers)
	if pairs := len(sizes) * len(workers); pairs > MaxSweepSimulations {
		return nil, fmt.Errorf("sweep of %d pipeline sizes by %d worker counts is %d simulations, more than the maximum of %d: "+
			"use fewer values, such as powers of two (8,16,32,64)", len(sizes), len(workers), pairs, MaxSweepSimulations)
	}

	rows := make([]SweepRow, 0, len(sizes)*len(workers))
	for _, size := range sizes {
		for _, count := range workers {
			s := base
			s.PipelineSize = size
			s.Workers = count
			result, err := Simulate(arrivals, s)
			if err != nil {
				return nil, err
			}
			rows = append(rows, SweepRow{
				PipelineSize: size,
				Workers:      count,
				Rejected:     result.Rejected,
				P99Delay:     result.Delay.P99,
				MaxDepth:     result.MaxDepth,
			})
		}
	}
	return rows, nil
}

// sortedUnique returns a sorted copy of values without duplicates, or
// fallback alone when values is empty.
func sortedUnique(values []int, fallback int) []int {
	if len(values) == 0 {
		return []int{fallback}
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return slices.Compact(sorted)
}

// WriteSweepTable writes rows to w as a text table with aligned columns
// and a header line. Delays are rounded to the microsecond.
func WriteSweepTable(w io.Writer, rows []SweepRow) error {
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(table, "PIPELINE SIZE\tWORKERS\t503 RESPONSES\tP99 DELAY\tMAX DEPTH\n")
	for _, row := range rows {
		fmt.Fprintf(table, "%d\t%d\t%d\t%v\t%d\n", row.PipelineSize, row.Workers, row.Rejected, row.P99Delay.Round(time.Microsecond), row.MaxDepth)
	}
	return table.Flush()
}

// ParseGrid parses a list of positive integers for a sweep flag: values
// and ranges separated by commas, such as "16,32,64,128" or "1-8" or
// "1-4,8". A range includes both ends. The list may have at most
// MaxGridValues values, counting duplicates. The result is sorted, without
// duplicates.
func ParseGrid(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("invalid grid %q: missing values: set values such as 16,32,64 or a range such as 1-8", s)
	}

	var values []int
	for item := range strings.SplitSeq(s, ",") {
		low, high, err := parseGridItem(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("invalid grid %q: %w", s, err)
		}
		if high-low >= MaxGridValues-len(values) {
			return nil, fmt.Errorf("invalid grid %q: more than %d values", s, MaxGridValues)
		}
		for v := low; v <= high; v++ {
			values = append(values, v)
		}
	}
	slices.Sort(values)
	return slices.Compact(values), nil
}

// parseGridItem parses one item of a grid: a value, or a range low-high.
// A value v is returned as the range v-v.
func parseGridItem(item string) (low, high int, err error) {
	first, last, isRange := strings.Cut(item, "-")
	low, err = parseGridValue(item, first)
	if err != nil || !isRange {
		return low, low, err
	}
	high, err = parseGridValue(item, last)
	if err != nil {
		return 0, 0, err
	}
	if low > high {
		return 0, 0, fmt.Errorf("range %q ends before it starts", item)
	}
	return low, high, nil
}

// parseGridValue parses one end of item as a positive integer.
func parseGridValue(item, s string) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q is not a positive integer or a range such as 1-8", item)
	}
	return v, nil
}

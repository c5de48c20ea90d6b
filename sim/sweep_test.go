package sim

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSweepRowsOrderedBySizeThenWorkers(t *testing.T) {
	rows, err := Sweep(burst(5), settings(64, 4, time.Second), []int{4, 2, 4}, []int{2, 1})
	require.NoError(t, err)

	var pairs []string
	for _, row := range rows {
		pairs = append(pairs, fmt.Sprintf("%d/%d", row.PipelineSize, row.Workers))
	}
	assert.Equal(t, []string{"2/1", "2/2", "4/1", "4/2"}, pairs)
}

func TestSweepRowsMatchSimulate(t *testing.T) {
	arrivals := randomArrivals(300, 5*time.Millisecond, 3)
	latency, err := ParseLatency("exponential:15ms")
	require.NoError(t, err)
	base := Settings{PipelineSize: 1, Workers: 1, Speed: 2, APILatency: latency, Seed: 9}

	rows, err := Sweep(arrivals, base, []int{2, 8}, []int{1, 3})
	require.NoError(t, err)
	require.Len(t, rows, 4)
	for _, row := range rows {
		s := base
		s.PipelineSize = row.PipelineSize
		s.Workers = row.Workers
		r := simulate(t, arrivals, s)

		want := SweepRow{PipelineSize: row.PipelineSize, Workers: row.Workers, Rejected: r.Rejected, P99Delay: r.Delay.P99, MaxDepth: r.MaxDepth}
		assert.Equal(t, want, row)
	}
}

func TestSweepEmptyListUsesBase(t *testing.T) {
	rows, err := Sweep(burst(5), settings(2, 1, time.Second), nil, []int{1, 2})
	require.NoError(t, err)

	require.Len(t, rows, 2)
	assert.Equal(t, 2, rows[0].PipelineSize)
	assert.Equal(t, 3, rows[0].Rejected)
	assert.Equal(t, 2*time.Second, rows[0].P99Delay)
	assert.Equal(t, 2, rows[1].Workers)
	assert.Equal(t, time.Second, rows[1].P99Delay)
}

func TestSweepInvalidValue(t *testing.T) {
	_, err := Sweep(burst(1), settings(1, 1, 0), []int{4, 0}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid pipeline size 0")

	_, err = Sweep(burst(1), settings(1, 1, 0), nil, []int{-1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid worker count -1")
}

// gridOf returns the values 1 to n.
func gridOf(n int) []int {
	values := make([]int, n)
	for i := range values {
		values[i] = i + 1
	}
	return values
}

func TestSweepTooManySimulations(t *testing.T) {
	rows, err := Sweep(burst(1), settings(1, 1, 0), gridOf(MaxGridValues), gridOf(MaxGridValues))
	require.Error(t, err)
	assert.Nil(t, rows)
	assert.Contains(t, err.Error(), "sweep of 1024 pipeline sizes by 1024 worker counts is 1048576 simulations")
	assert.Contains(t, err.Error(), "more than the maximum of 4096")
	assert.Contains(t, err.Error(), "use fewer values")

	_, err = Sweep(burst(1), settings(1, 1, 0), gridOf(65), gridOf(64))
	require.Error(t, err, "65 by 64 is one row of 64 over the maximum")
	assert.Contains(t, err.Error(), "4160 simulations")
}

func TestSweepAtMaxSimulations(t *testing.T) {
	rows, err := Sweep(burst(1), settings(1, 1, 0), gridOf(64), gridOf(64))
	require.NoError(t, err)
	assert.Len(t, rows, MaxSweepSimulations)
}

func TestWriteSweepTable(t *testing.T) {
	rows := []SweepRow{
		{PipelineSize: 16, Workers: 1, Rejected: 1200, P99Delay: 1500*time.Millisecond + 400, MaxDepth: 16},
		{PipelineSize: 128, Workers: 8, Rejected: 0, P99Delay: 40 * time.Millisecond, MaxDepth: 97},
	}
	var out bytes.Buffer
	require.NoError(t, WriteSweepTable(&out, rows))

	want := "" +
		"PIPELINE SIZE  WORKERS  503 RESPONSES  P99 DELAY  MAX DEPTH\n" +
		"16             1        1200           1.5s       16\n" +
		"128            8        0              40ms       97\n"
	assert.Equal(t, want, out.String())
}

func TestParseGrid(t *testing.T) {
	cases := map[string][]int{
		"16,32,64,128": {16, 32, 64, 128},
		"1-8":          {1, 2, 3, 4, 5, 6, 7, 8},
		"8,1-3,2":      {1, 2, 3, 8},
		" 4 , 2 ":      {2, 4},
		"5-5":          {5},
		"1-1024":       nil, // checked by length below
	}
	for input, want := range cases {
		t.Run(input, func(t *testing.T) {
			got, err := ParseGrid(input)
			require.NoError(t, err)
			if want == nil {
				assert.Len(t, got, MaxGridValues)
				return
			}
			assert.Equal(t, want, got)
		})
	}
}

func TestParseGridErrors(t *testing.T) {
	cases := map[string]string{
		"":                 "missing values",
		" ":                "missing values",
		"0":                `"0" is not a positive integer`,
		"x":                `"x" is not a positive integer`,
		"1.5":              `"1.5" is not a positive integer`,
		"1,,2":             `"" is not a positive integer`,
		"3-1":              `range "3-1" ends before it starts`,
		"1-":               `"1-" is not a positive integer`,
		"-3":               `"-3" is not a positive integer`,
		"1-2-3":            `"1-2-3" is not a positive integer`,
		"1-1025":           "more than 1024 values",
		"1-1000,2001-2030": "more than 1024 values",
	}
	for input, want := range cases {
		t.Run(input, func(t *testing.T) {
			_, err := ParseGrid(input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("invalid grid %q: ", input))
			assert.Contains(t, err.Error(), want)
		})
	}
}

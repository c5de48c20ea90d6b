package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// render calls write twice and requires the same bytes both times.
func render(t *testing.T, write func(*bytes.Buffer) error) string {
	t.Helper()
	var first, second bytes.Buffer
	require.NoError(t, write(&first))
	require.NoError(t, write(&second))
	require.Equal(t, first.Bytes(), second.Bytes(), "rendering twice gives different bytes")
	return first.String()
}

func TestWriteSweepChart(t *testing.T) {
	arrivals := randomArrivals(400, 4*time.Millisecond, 5)
	latency, err := ParseLatency("lognormal:10ms,40ms")
	require.NoError(t, err)
	base := Settings{Speed: 1, APILatency: latency, Seed: 1}
	rows, err := Sweep(arrivals, base, []int{4, 8, 16, 32}, []int{1, 2, 4})
	require.NoError(t, err)

	svg := render(t, func(b *bytes.Buffer) error { return WriteSweepChart(b, rows) })

	assert.Contains(t, svg, "<svg")
	assert.Contains(t, svg, "503 responses by pipeline size")
	assert.Contains(t, svg, "1 worker")
	assert.Contains(t, svg, "4 workers")
	assert.Contains(t, svg, "pipeline size (events)")
}

func TestWriteSweepChartNoRows(t *testing.T) {
	var out bytes.Buffer
	err := WriteSweepChart(&out, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no rows")
	assert.Zero(t, out.Len())
}

func TestWriteDepthChart(t *testing.T) {
	r := simulate(t, randomArrivals(400, 4*time.Millisecond, 5), settings(16, 2, 10*time.Millisecond))

	svg := render(t, func(b *bytes.Buffer) error { return WriteDepthChart(b, r, "Depth at size 16") })

	assert.Contains(t, svg, "<svg")
	assert.Contains(t, svg, "Depth at size 16")
	assert.Contains(t, svg, "pipeline size (16)")
	assert.Contains(t, svg, "virtual time (s)")
}

func TestWriteDepthChartNoSeries(t *testing.T) {
	var out bytes.Buffer
	err := WriteDepthChart(&out, Result{}, "empty")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no depth series")
}

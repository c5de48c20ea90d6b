package sim

import (
	"bytes"
	"html"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
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
	assert.NotContains(t, svg, ".00<", "a y tick label has decimals")
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

func TestIntegerTicks(t *testing.T) {
	for _, top := range []float64{1.05, 3.15, 67.2, 525, 40000} {
		labeled := 0
		for _, tick := range integerTicks(0, top) {
			if tick.IsMinor() {
				continue
			}
			labeled++
			assert.Equal(t, math.Trunc(tick.Value), tick.Value, "labeled tick at a fraction, range 0 to %g", top)
			assert.Equal(t, strconv.FormatFloat(tick.Value, 'f', 0, 64), tick.Label, "range 0 to %g", top)
		}
		assert.GreaterOrEqual(t, labeled, 2, "labeled ticks, range 0 to %g", top)
	}
}

// testCharts returns charts of each kind: a sweep of 3 worker counts, a
// sweep of 30, whose legend is taller than the usual chart height, and a
// depth chart with a title too long for the width of the page.
func testCharts(t *testing.T) map[string]chart {
	t.Helper()
	arrivals := randomArrivals(400, 4*time.Millisecond, 5)
	base := settings(1, 1, 10*time.Millisecond)
	sizes := []int{8, 16, 32, 64, 128, 256}

	rows, err := Sweep(arrivals, base, sizes, []int{1, 2, 4})
	require.NoError(t, err)
	sweep, err := newSweepChart(rows)
	require.NoError(t, err)

	manyWorkers := make([]int, 30)
	for i := range manyWorkers {
		manyWorkers[i] = i + 1
	}
	rows, err = Sweep(arrivals, base, sizes, manyWorkers)
	require.NoError(t, err)
	tall, err := newSweepChart(rows)
	require.NoError(t, err)

	r := simulate(t, arrivals, settings(64, 4, 20*time.Millisecond))
	longTitle := "Pipeline depth: size 64, 4 workers, API latency lognormal:10ms,40ms, with a title longer than the page"
	depth, err := newDepthChart(r, longTitle)
	require.NoError(t, err)

	return map[string]chart{"sweep": sweep, "sweep of 30 worker counts": tall, "depth": depth}
}

func TestChartLegendBesideData(t *testing.T) {
	for name, c := range testCharts(t) {
		t.Run(name, func(t *testing.T) {
			page := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: chartWidth, Y: c.height()}}}
			layout := c.layout(page)
			data := c.plot.DataCanvas(layout.plot)
			legend := c.legend.Rectangle(layout.legend)

			assert.Greater(t, layout.legend.Min.X, layout.plot.Max.X, "legend column starts inside the plot")
			assert.Greater(t, layout.legend.Min.X, data.Max.X, "legend column starts inside the data area")
			assert.LessOrEqual(t, legend.Size().Y, layout.legend.Size().Y, "legend is taller than its column")
			assert.GreaterOrEqual(t, layout.legend.Min.Y, page.Min.Y, "legend column ends below the page")
			assert.LessOrEqual(t, layout.legend.Max.X, page.Max.X, "legend column ends right of the page")
		})
	}
}

// svgText matches a text element of vgsvg that is not rotated: its start
// x, its baseline y (negated, because of the flip of the y axis), its
// font size in points and its text.
var svgText = regexp.MustCompile(`<text x="([-0-9.e]+)" y="([-0-9.e]+)" transform="scale\(1, -1\)"\s*style="[^"]*font-size:([0-9.]+)px">([^<]*)</text>`)

// svgRotated matches a group of vgsvg with a rotation, such as the one of
// the y axis label.
var svgRotated = regexp.MustCompile(`(?s)<g transform="[^"]*rotate[^"]*">.*?</g>`)

func TestChartTextInsideCanvas(t *testing.T) {
	for name, c := range testCharts(t) {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, c.write(&out, "svg"))
			svg := svgRotated.ReplaceAllString(out.String(), "")
			height := c.height().Points()

			texts := svgText.FindAllStringSubmatch(svg, -1)
			require.NotEmpty(t, texts)
			for _, m := range texts {
				x, _ := strconv.ParseFloat(m[1], 64)
				baseline, _ := strconv.ParseFloat(m[2], 64)
				size, _ := strconv.ParseFloat(m[3], 64)
				content := html.UnescapeString(m[4])
				style := text.Style{Font: font.From(plot.DefaultFont, vg.Length(size)), Handler: plot.DefaultTextHandler}
				width := style.Width(content).Points() * fontSlack
				extents := style.FontExtents()
				y := -baseline // from the bottom of the canvas up

				assert.GreaterOrEqual(t, x, 0.0, "%q starts left of the canvas", content)
				assert.LessOrEqual(t, x+width, chartWidth.Points(), "%q in a font %g times wider ends right of the canvas", content, fontSlack)
				assert.GreaterOrEqual(t, y-extents.Descent.Points(), 0.0, "%q ends below the canvas", content)
				assert.LessOrEqual(t, y+extents.Ascent.Points(), height, "%q starts above the canvas", content)
			}
		})
	}
}

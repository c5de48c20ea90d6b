package sim

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Chart size in the SVG documents.
const (
	chartWidth  = 16 * vg.Centimeter
	chartHeight = 10 * vg.Centimeter
)

// WriteSweepChart writes an SVG line chart of rows to w: the number of 503
// responses against the pipeline size, with one line per worker count.
// The same rows give the same bytes.
func WriteSweepChart(w io.Writer, rows []SweepRow) error {
	if len(rows) == 0 {
		return errors.New("write sweep chart: no rows to chart")
	}

	p := plot.New()
	p.Title.Text = "503 responses by pipeline size"
	p.X.Label.Text = "pipeline size (events)"
	p.Y.Label.Text = "503 responses"
	p.Add(plotter.NewGrid())

	counts := workerCounts(rows)
	maxRejected := 0
	for i, workers := range counts {
		var points plotter.XYs
		for _, row := range rows {
			if row.Workers == workers {
				points = append(points, plotter.XY{X: float64(row.PipelineSize), Y: float64(row.Rejected)})
				maxRejected = max(maxRejected, row.Rejected)
			}
		}
		slices.SortStableFunc(points, func(a, b plotter.XY) int {
			return cmp.Compare(a.X, b.X)
		})

		line, dots, err := plotter.NewLinePoints(points)
		if err != nil {
			return fmt.Errorf("write sweep chart: line for %d workers: %w", workers, err)
		}
		line.Color = plotutil.Color(i)
		dots.Color = plotutil.Color(i)
		dots.Shape = plotutil.Shape(i)
		p.Add(line, dots)
		p.Legend.Add(pluralize(workers, "worker"), line, dots)
	}
	p.Y.Min = 0
	p.Y.Max = withLegendRoom(float64(maxRejected), len(counts))
	p.Legend.Top = true
	setSizeAxis(p, rows)

	return writeSVG(w, p, "write sweep chart")
}

// setSizeAxis marks each pipeline size of rows on the x axis. Sizes that
// span a factor of 8 or more, such as the usual powers of two, get a
// logarithmic axis so the small ones do not crowd together.
func setSizeAxis(p *plot.Plot, rows []SweepRow) {
	sizes := sortedUnique(sizesOf(rows), 0)
	ticks := make([]plot.Tick, len(sizes))
	for i, size := range sizes {
		ticks[i] = plot.Tick{Value: float64(size), Label: fmt.Sprint(size)}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if sizes[len(sizes)-1] >= 8*sizes[0] {
		p.X.Scale = plot.LogScale{}
		p.X.Label.Text += ", logarithmic"
	}
}

func sizesOf(rows []SweepRow) []int {
	sizes := make([]int, len(rows))
	for i, row := range rows {
		sizes[i] = row.PipelineSize
	}
	return sizes
}

// workerCounts returns the worker counts of rows, sorted, without
// duplicates.
func workerCounts(rows []SweepRow) []int {
	counts := make([]int, len(rows))
	for i, row := range rows {
		counts[i] = row.Workers
	}
	slices.Sort(counts)
	return slices.Compact(counts)
}

// WriteDepthChart writes an SVG step chart of r.Depth to w: the pipeline
// depth over virtual time in seconds, with the pipeline size as a
// horizontal line. The same result and title give the same bytes.
//
// NOTE: the chart draws every point of r.Depth, about two per accepted
// event, so the SVG of a stream of 100,000 events is several megabytes.
func WriteDepthChart(w io.Writer, r Result, title string) error {
	if len(r.Depth) == 0 {
		return errors.New("write depth chart: the result has no depth series; get it from Simulate")
	}

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "virtual time (s)"
	p.Y.Label.Text = "pipeline depth (events)"
	p.Add(plotter.NewGrid())

	points := make(plotter.XYs, len(r.Depth))
	for i, point := range r.Depth {
		points[i] = plotter.XY{X: point.At.Seconds(), Y: float64(point.Depth)}
	}
	depth, err := plotter.NewLine(points)
	if err != nil {
		return fmt.Errorf("write depth chart: %w", err)
	}
	depth.StepStyle = plotter.PostStep
	depth.Color = plotutil.Color(0)

	end := points[len(points)-1].X
	size := float64(r.Settings.PipelineSize)
	capacity, err := plotter.NewLine(plotter.XYs{{X: 0, Y: size}, {X: end, Y: size}})
	if err != nil {
		return fmt.Errorf("write depth chart: %w", err)
	}
	capacity.Color = color.Gray{Y: 96}
	capacity.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}

	p.Add(depth, capacity)
	p.Legend.Add("depth", depth)
	p.Legend.Add(fmt.Sprintf("pipeline size (%d)", r.Settings.PipelineSize), capacity)
	p.Legend.Top = true
	p.Y.Min = 0
	p.Y.Max = withLegendRoom(max(size, float64(r.MaxDepth)), 2)

	return writeSVG(w, p, "write depth chart")
}

// withLegendRoom returns the top of a y axis whose data ends at top, with
// room above the data for a legend of the given number of entries in the
// top right corner. Each entry takes about 7% of the height of the chart.
func withLegendRoom(top float64, entries int) float64 {
	return max(top, 1) * (1.05 + 0.07*float64(entries))
}

// writeSVG renders p as SVG to w. operation starts error messages.
func writeSVG(w io.Writer, p *plot.Plot, operation string) error {
	canvas, err := p.WriterTo(chartWidth, chartHeight, "svg")
	if err != nil {
		return fmt.Errorf("%s: %w", operation, err)
	}
	if _, err := canvas.WriteTo(w); err != nil {
		return fmt.Errorf("%s: %w", operation, err)
	}
	return nil
}

// pluralize returns n and noun, with an s for any n but 1.
func pluralize(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

package sim

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Layout of a chart. The SVG names its font, Liberation Serif, and places
// each text by the width of that font. A viewer without it substitutes
// another font, which may be wider. DejaVu Serif, a common substitute on
// Linux, makes the labels of these charts 25% to 28% wider. Room for text
// is therefore its Liberation Serif width times fontSlack.
const (
	chartWidth  = 16 * vg.Centimeter
	chartHeight = 10 * vg.Centimeter

	// chartMargin is the blank border around everything drawn.
	chartMargin = 3 * vg.Millimeter

	// legendGap separates the plot, x tick labels included, from the
	// legend to its right.
	legendGap = 3 * vg.Millimeter

	fontSlack = 1.3
)

// chart is a plot with a title above it and a legend to the right of its
// data area, where the legend never covers a line. The plot has no title
// of its own, so that a long title can span the legend column too.
type chart struct {
	title  string
	plot   *plot.Plot
	legend plot.Legend
}

// WriteSweepChart writes an SVG line chart of rows to w: the number of 503
// responses against the pipeline size, with one line per worker count.
// The same rows give the same bytes.
func WriteSweepChart(w io.Writer, rows []SweepRow) error {
	c, err := newSweepChart(rows)
	if err != nil {
		return fmt.Errorf("write sweep chart: %w", err)
	}
	if err := c.write(w, "svg"); err != nil {
		return fmt.Errorf("write sweep chart: %w", err)
	}
	return nil
}

func newSweepChart(rows []SweepRow) (chart, error) {
	if len(rows) == 0 {
		return chart{}, errors.New("no rows to chart")
	}

	p := plot.New()
	p.X.Label.Text = "pipeline size (events)"
	p.Y.Label.Text = "503 responses"
	p.Add(plotter.NewGrid())
	legend := newLegend()

	maxRejected := 0
	for i, workers := range workerCounts(rows) {
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
			return chart{}, fmt.Errorf("line for %d workers: %w", workers, err)
		}
		line.Color = plotutil.Color(i)
		dots.Color = plotutil.Color(i)
		dots.Shape = plotutil.Shape(i)
		p.Add(line, dots)
		legend.Add(pluralize(workers, "worker"), line, dots)
	}
	setCountAxis(&p.Y, maxRejected)
	setSizeAxis(p, rows)

	return chart{title: "503 responses by pipeline size", plot: p, legend: legend}, nil
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
	c, err := newDepthChart(r, title)
	if err != nil {
		return fmt.Errorf("write depth chart: %w", err)
	}
	if err := c.write(w, "svg"); err != nil {
		return fmt.Errorf("write depth chart: %w", err)
	}
	return nil
}

func newDepthChart(r Result, title string) (chart, error) {
	if len(r.Depth) == 0 {
		return chart{}, errors.New("the result has no depth series; get it from Simulate")
	}

	p := plot.New()
	p.X.Label.Text = "virtual time (s)"
	p.Y.Label.Text = "pipeline depth (events)"
	p.Add(plotter.NewGrid())

	points := make(plotter.XYs, len(r.Depth))
	for i, point := range r.Depth {
		points[i] = plotter.XY{X: point.At.Seconds(), Y: float64(point.Depth)}
	}
	depth, err := plotter.NewLine(points)
	if err != nil {
		return chart{}, err
	}
	depth.StepStyle = plotter.PostStep
	depth.Color = plotutil.Color(0)

	end := points[len(points)-1].X
	size := float64(r.Settings.PipelineSize)
	capacity, err := plotter.NewLine(plotter.XYs{{X: 0, Y: size}, {X: end, Y: size}})
	if err != nil {
		return chart{}, err
	}
	capacity.Color = color.Gray{Y: 96}
	capacity.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}

	p.Add(depth, capacity)
	legend := newLegend()
	legend.Add("depth", depth)
	legend.Add(fmt.Sprintf("pipeline size (%d)", r.Settings.PipelineSize), capacity)
	setCountAxis(&p.Y, max(r.Settings.PipelineSize, r.MaxDepth))

	return chart{title: title, plot: p, legend: legend}, nil
}

// setCountAxis sets axis to count from 0 to a little above top, with ticks
// labeled as whole numbers only.
func setCountAxis(axis *plot.Axis, top int) {
	axis.Min = 0
	axis.Max = float64(max(top, 1)) * 1.05
	axis.Tick.Marker = plot.TickerFunc(integerTicks)
}

// integerTicks returns the ticks of plot.DefaultTicks with labels written
// without decimals. A labeled tick at a fraction, as in a range such as 0
// to 1, becomes an unlabeled minor tick.
func integerTicks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, tick := range ticks {
		switch {
		case tick.IsMinor():
		case tick.Value != math.Trunc(tick.Value):
			ticks[i].Label = ""
		default:
			ticks[i].Label = strconv.FormatFloat(tick.Value, 'f', 0, 64)
		}
	}
	return ticks
}

// newLegend returns a legend for the column right of the data area: top
// aligned, with the icons on the left so that text in a wider font grows
// into the room on the right.
func newLegend() plot.Legend {
	legend := plot.NewLegend()
	legend.Left = true
	legend.Top = true
	return legend
}

// write renders c to w in format, one of the formats of
// draw.NewFormattedCanvas such as "svg" or "png".
func (c chart) write(w io.Writer, format string) error {
	canvas, err := draw.NewFormattedCanvas(chartWidth, c.height(), format)
	if err != nil {
		return err
	}
	page := draw.New(canvas)
	page.SetColor(color.White)
	page.Fill(page.Rectangle.Path())

	layout := c.layout(page)
	page.FillText(layout.titleStyle, layout.titleAt, c.title)
	c.plot.Draw(layout.plot)
	c.legend.Draw(layout.legend)

	_, err = canvas.WriteTo(w)
	return err
}

// chartLayout is the placement of the parts of a chart on a page.
type chartLayout struct {
	titleStyle text.Style
	titleAt    vg.Point

	// plot is the area of the plot, axes and tick labels included.
	plot draw.Canvas

	// legend is the legend column, from the top of the data area down to
	// the bottom margin.
	legend draw.Canvas
}

func (c chart) layout(page draw.Canvas) chartLayout {
	area := draw.Crop(page, chartMargin, -chartMargin, chartMargin, -chartMargin)

	// The title is centered above the plot and the legend column, in a
	// smaller font if it is too long. A wider font extends a centered
	// text to the right only, because the SVG fixes where the text
	// starts, so the title needs 2*fontSlack-1 times its width.
	var l chartLayout
	l.titleStyle = c.plot.Title.TextStyle
	if width := l.titleStyle.Width(c.title) * (2*fontSlack - 1); width > area.Size().X {
		l.titleStyle.Font.Size = l.titleStyle.Font.Size * area.Size().X / width
	}
	l.titleAt = vg.Point{X: area.Center().X, Y: area.Max.Y + l.titleStyle.FontExtents().Descent}
	area.Max.Y -= l.titleStyle.Rectangle(c.title).Size().Y + c.plot.Title.Padding

	// The plot takes the left part, up to the gap before the legend.
	column := c.legendWidth()
	l.plot = draw.Crop(area, 0, -(column + legendGap), 0, 0)

	l.legend = area
	l.legend.Min.X = area.Max.X - column
	l.legend.Max.Y = c.plot.DataCanvas(l.plot).Max.Y
	return l
}

// height returns chartHeight, or more when the legend is taller than the
// room from the top of the data area to the bottom margin.
func (c chart) height() vg.Length {
	page := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: chartWidth, Y: chartHeight}}}
	layout := c.layout(page)
	missing := c.legend.Rectangle(layout.legend).Size().Y - layout.legend.Size().Y
	return chartHeight + max(missing, 0)
}

// legendWidth returns the width of the legend column: the widest entry,
// its icon included, with the text widened by fontSlack.
func (c chart) legendWidth() vg.Length {
	text := c.legend.Rectangle(draw.Canvas{}).Size().X - c.legend.ThumbnailWidth
	return c.legend.ThumbnailWidth + text*fontSlack
}

// pluralize returns n and noun, with an s for any n but 1.
func pluralize(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

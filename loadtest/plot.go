package loadtest

import (
	"strconv"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/tsenart/vegeta/v12/lib/plot"
)

// plotPoints is the number of points each series of a plot keeps, as
// vegeta's own plot command keeps by default.
const plotPoints = 4000

// NewPlot returns a vegeta HTML plot of latency over time with one series
// per attack and status code. Feed it through Options.Observe.
func NewPlot(title string) *plot.Plot {
	return plot.New(plot.Title(title), plot.Downsample(plotPoints), plot.Label(statusLabel))
}

// statusLabel names a result's series by its status code. vegeta colours
// labels containing "ERROR" as failures.
func statusLabel(result *vegeta.Result) string {
	switch {
	case result.Code == 0:
		return "ERROR no response"
	case result.Error != "":
		return strconv.Itoa(int(result.Code)) + " ERROR"
	}
	return strconv.Itoa(int(result.Code))
}

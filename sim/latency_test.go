package sim

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestParseLatencyCanonicalForm(t *testing.T) {
	cases := map[string]string{
		"20ms":                        "20ms",
		"0":                           "0s",
		"1.5s":                        "1.5s",
		"1m30s":                       "1m30s",
		" uniform:10ms-50ms ":         "uniform:10ms-50ms",
		"uniform: 10ms - 50ms":        "uniform:10ms-50ms",
		"uniform:0s-0s":               "uniform:0s-0s",
		"normal:20ms,5ms":             "normal:20ms,5ms",
		"normal:0s,0s":                "normal:0s,0s",
		"exponential:20000us":         "exponential:20ms",
		"lognormal:20ms,100ms":        "lognormal:20ms,100ms",
		"lognormal:0.02s,0.02s":       "lognormal:20ms,20ms",
		"exponential:1h0m0.5s":        "exponential:1h0m0.5s",
		"uniform:999ns-1000000ns":     "uniform:999ns-1ms",
		"normal:1500ms,1h":            "normal:1.5s,1h0m0s",
		"lognormal:1ns,292h":          "lognormal:1ns,292h0m0s",
		"exponential:0s":              "exponential:0s",
		"uniform:1ms-9223372036854ms": "uniform:1ms-2562047h47m16.854s",
	}
	for input, want := range cases {
		t.Run(input, func(t *testing.T) {
			l, err := ParseLatency(input)
			require.NoError(t, err)
			assert.Equal(t, want, l.String())
		})
	}
}

func TestParseLatencyErrors(t *testing.T) {
	cases := map[string]string{
		"":                     "missing duration",
		"fast":                 `time: invalid duration "fast"`,
		"-5ms":                 "negative duration -5ms",
		"gamma:1s,2s":          `unknown distribution "gamma"`,
		"uniform:10ms":         `missing "-" between min and max`,
		"uniform:50ms-10ms":    "min 50ms is greater than max 10ms",
		"uniform:x-10ms":       "min: time: invalid duration",
		"normal:20ms":          `missing "," between mean and stddev`,
		"normal:20ms,-1ms":     "stddev: negative duration -1ms",
		"exponential:":         "mean: missing duration",
		"lognormal:0s,1s":      "median must be greater than 0",
		"lognormal:20ms,10ms":  "p99 10ms is less than median 20ms",
		"lognormal:20ms;100ms": `missing "," between median and p99`,
	}
	for input, want := range cases {
		t.Run(input, func(t *testing.T) {
			_, err := ParseLatency(input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("invalid latency %q: ", input))
			assert.Contains(t, err.Error(), want)
			assert.Contains(t, err.Error(), "accepted forms:")
		})
	}
}

func TestLatencyZeroValue(t *testing.T) {
	var l Latency
	rng := rand.New(rand.NewPCG(1, 0))

	assert.Equal(t, "0s", l.String())
	assert.Equal(t, time.Duration(0), l.Sample(rng))
}

func TestLatencyFlag(t *testing.T) {
	var l Latency
	flags := flag.NewFlagSet("test", flag.ContinueOnError)
	flags.SetOutput(nopWriter{})
	flags.Var(&l, "api-latency", "latency of one create")

	require.NoError(t, flags.Parse([]string{"-api-latency", "uniform:1ms-2ms"}))
	assert.Equal(t, "uniform:1ms-2ms", l.String())

	err := flags.Parse([]string{"-api-latency", "uniform:2ms"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `invalid latency "uniform:2ms"`)
	assert.Equal(t, "uniform:1ms-2ms", l.String(), "a failed Set keeps the value")
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestFixedLatencyPanicsOnNegative(t *testing.T) {
	assert.Panics(t, func() { FixedLatency(-time.Millisecond) })
}

// sampleMany draws n samples of the latency spec with a fixed seed and
// returns them sorted.
func sampleMany(t *testing.T, spec string, n int) []time.Duration {
	t.Helper()
	l, err := ParseLatency(spec)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 0))
	samples := make([]time.Duration, n)
	for i := range samples {
		samples[i] = l.Sample(rng)
	}
	slices.Sort(samples)
	return samples
}

func meanOf(samples []time.Duration) float64 {
	sum := 0.0
	for _, s := range samples {
		sum += float64(s)
	}
	return sum / float64(len(samples))
}

// The distribution tests use a fixed seed, so they are deterministic. The
// tolerances are several standard errors wide for 100,000 samples.
func TestLatencyDistributions(t *testing.T) {
	const n = 100_000
	ms := float64(time.Millisecond)

	t.Run("lognormal median and p99", func(t *testing.T) {
		samples := sampleMany(t, "lognormal:20ms,100ms", n)
		assert.InEpsilon(t, 20*ms, float64(samples[n/2]), 0.02)
		assert.InEpsilon(t, 100*ms, float64(samples[n*99/100]), 0.05)
	})
	t.Run("exponential mean", func(t *testing.T) {
		samples := sampleMany(t, "exponential:20ms", n)
		assert.InEpsilon(t, 20*ms, meanOf(samples), 0.02)
	})
	t.Run("normal mean", func(t *testing.T) {
		samples := sampleMany(t, "normal:20ms,5ms", n)
		assert.InEpsilon(t, 20*ms, meanOf(samples), 0.01)
		assert.InEpsilon(t, 20*ms, float64(samples[n/2]), 0.01)
	})
	t.Run("normal clamped at zero", func(t *testing.T) {
		samples := sampleMany(t, "normal:0s,5ms", n)
		zeros := countLeading(samples, 0)
		assert.InEpsilon(t, n/2, zeros, 0.02, "about half the samples are clamped to 0")
	})
	t.Run("normal mean raised by clamping", func(t *testing.T) {
		// The mean of max(0, X) for X normal with mean m and standard
		// deviation s is m*Φ(m/s) + s*φ(m/s).
		m, s := 20*ms, 100*ms
		z := m / s
		cdf := 0.5 * math.Erfc(-z/math.Sqrt2)
		density := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
		want := m*cdf + s*density

		samples := sampleMany(t, "normal:20ms,100ms", n)
		assert.InEpsilon(t, 50.69*ms, want, 0.001, "mean from the formula")
		assert.InEpsilon(t, want, meanOf(samples), 0.02)
		assert.Greater(t, meanOf(samples), 2*m, "the mean is more than twice the mean parameter")
	})
	t.Run("uniform mean", func(t *testing.T) {
		samples := sampleMany(t, "uniform:10ms-50ms", n)
		assert.InEpsilon(t, 30*ms, meanOf(samples), 0.01)
	})
}

// countLeading returns how many values at the start of sorted equal v.
func countLeading(sorted []time.Duration, v time.Duration) int {
	for i, s := range sorted {
		if s != v {
			return i
		}
	}
	return len(sorted)
}

// latencySpec draws the canonical text of a valid latency of any kind.
func latencySpec(t *rapid.T) string {
	duration := func(label string) time.Duration {
		// Half the draws are up to a minute, the others up to the maximum
		// duration, to cover the whole range of time.Duration.String.
		if rapid.Bool().Draw(t, label+"_small") {
			return time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, label))
		}
		return time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, label))
	}
	a, b := duration("a"), duration("b")
	low, high := min(a, b), max(a, b)

	switch rapid.IntRange(0, 4).Draw(t, "kind") {
	case 0:
		return a.String()
	case 1:
		return fmt.Sprintf("uniform:%v-%v", low, high)
	case 2:
		return fmt.Sprintf("normal:%v,%v", a, b)
	case 3:
		return fmt.Sprintf("exponential:%v", a)
	}
	return fmt.Sprintf("lognormal:%v,%v", max(low, 1), max(high, 1))
}

func TestLatencyRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := latencySpec(t)
		l, err := ParseLatency(spec)
		if err != nil {
			t.Fatal(err)
		}
		assert.Equal(t, spec, l.String())

		again, err := ParseLatency(l.String())
		if err != nil {
			t.Fatal(err)
		}
		assert.Equal(t, l, again)
	})
}

func TestLatencySampleNeverNegativeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l, err := ParseLatency(latencySpec(t))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		for i := range 100 {
			assert.GreaterOrEqual(t, l.Sample(rng), time.Duration(0), "sample %d of %v", i, l)
		}
	})
}

func TestLatencyFixedSampleProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, "duration"))
		parsed, err := ParseLatency(d.String())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		for _, l := range []Latency{FixedLatency(d), parsed} {
			for i := range 20 {
				assert.Equal(t, d, l.Sample(rng), "sample %d of %v", i, l)
			}
		}
	})
}

func TestLatencyUniformBoundsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, "a"))
		b := time.Duration(rapid.Int64Range(0, math.MaxInt64).Draw(t, "b"))
		low, high := min(a, b), max(a, b)
		l, err := ParseLatency(fmt.Sprintf("uniform:%v-%v", low, high))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		for i := range 100 {
			sample := l.Sample(rng)
			assert.GreaterOrEqual(t, sample, low, "sample %d", i)
			assert.LessOrEqual(t, sample, high, "sample %d", i)
		}
	})
}

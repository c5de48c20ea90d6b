package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// latencyKind is the distribution of a [Latency].
type latencyKind int

const (
	latencyFixed latencyKind = iota
	latencyUniform
	latencyNormal
	latencyExponential
	latencyLogNormal
)

// latencyForms lists the forms ParseLatency accepts, for error messages.
const latencyForms = `accepted forms: "20ms" (fixed), "uniform:10ms-50ms" (min-max), ` +
	`"normal:20ms,5ms" (mean,stddev), "exponential:20ms" (mean), "lognormal:20ms,100ms" (median,p99)`

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// Latency is the distribution of the time the API server takes to create
// one Workflow. The zero value is a fixed latency of 0. Samples are never
// negative, so a normal latency with a large standard deviation has a
// larger mean than its parameter (see ParseLatency).
//
// A *Latency implements flag.Value, so it can be a command-line flag.
type Latency struct {
	kind latencyKind

	// a and b are the parameters of kind: the value for fixed, min and
	// max for uniform, mean and standard deviation for normal, the mean
	// for exponential, and the median and the 99th percentile for
	// lognormal.
	a, b time.Duration
}

// FixedLatency returns a latency that is always d. It panics if d is
// negative.
func FixedLatency(d time.Duration) Latency {
	if d < 0 {
		panic(fmt.Sprintf("sim: negative fixed latency %v", d))
	}
	return Latency{kind: latencyFixed, a: d}
}

// ParseLatency parses a latency in one of these forms:
//
//	20ms                  always 20ms
//	uniform:10ms-50ms     uniform between 10ms and 50ms, both included
//	normal:20ms,5ms       normal with mean 20ms and standard deviation 5ms,
//	                      where a sample below 0 becomes 0
//	exponential:20ms      exponential with mean 20ms
//	lognormal:20ms,100ms  log-normal with median 20ms and 99th percentile 100ms
//
// Durations use the syntax of time.ParseDuration and must not be negative.
//
// Because a normal sample below 0 becomes 0, the mean of normal:MEAN,STDDEV
// is MEAN*Φ(MEAN/STDDEV) + STDDEV*φ(MEAN/STDDEV), with Φ and φ the
// cumulative and density functions of the standard normal distribution.
// That is within 0.5% of MEAN while STDDEV is at most half of MEAN, about
// 8% above MEAN when the two are equal, and about 51ms for
// normal:20ms,100ms.
func ParseLatency(s string) (Latency, error) {
	l, err := parseLatency(strings.TrimSpace(s))
	if err != nil {
		return Latency{}, fmt.Errorf("invalid latency %q: %w (%s)", s, err, latencyForms)
	}
	return l, nil
}

// parseLatency parses s as ParseLatency does. Its errors do not repeat s.
func parseLatency(s string) (Latency, error) {
	kind, params, found := strings.Cut(s, ":")
	if !found {
		d, err := parseDuration(s)
		if err != nil {
			return Latency{}, err
		}
		return Latency{kind: latencyFixed, a: d}, nil
	}

	switch kind {
	case "uniform":
		lo, hi, err := parsePair(params, "-", "min", "max")
		if err != nil {
			return Latency{}, err
		}
		if lo > hi {
			return Latency{}, fmt.Errorf("min %v is greater than max %v", lo, hi)
		}
		return Latency{kind: latencyUniform, a: lo, b: hi}, nil

	case "normal":
		mean, stddev, err := parsePair(params, ",", "mean", "stddev")
		if err != nil {
			return Latency{}, err
		}
		return Latency{kind: latencyNormal, a: mean, b: stddev}, nil

	case "exponential":
		mean, err := parseDuration(params)
		if err != nil {
			return Latency{}, fmt.Errorf("mean: %w", err)
		}
		return Latency{kind: latencyExponential, a: mean}, nil

	case "lognormal":
		median, p99, err := parsePair(params, ",", "median", "p99")
		if err != nil {
			return Latency{}, err
		}
		if median == 0 {
			return Latency{}, fmt.Errorf("median must be greater than 0")
		}
		if p99 < median {
			return Latency{}, fmt.Errorf("p99 %v is less than median %v", p99, median)
		}
		return Latency{kind: latencyLogNormal, a: median, b: p99}, nil
	}
	return Latency{}, fmt.Errorf("unknown distribution %q", kind)
}

// parsePair parses two durations separated by sep. first and second name
// them in errors.
func parsePair(s, sep, first, second string) (a, b time.Duration, err error) {
	left, right, found := strings.Cut(s, sep)
	if !found {
		return 0, 0, fmt.Errorf("missing %q between %s and %s", sep, first, second)
	}
	if a, err = parseDuration(left); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", first, err)
	}
	if b, err = parseDuration(right); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", second, err)
	}
	return a, b, nil
}

// parseDuration parses a duration that must not be negative.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing duration")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %v", d)
	}
	return d, nil
}

// String returns l in the canonical form that ParseLatency accepts, with
// durations as time.Duration.String writes them.
func (l Latency) String() string {
	switch l.kind {
	case latencyUniform:
		return fmt.Sprintf("uniform:%v-%v", l.a, l.b)
	case latencyNormal:
		return fmt.Sprintf("normal:%v,%v", l.a, l.b)
	case latencyExponential:
		return fmt.Sprintf("exponential:%v", l.a)
	case latencyLogNormal:
		return fmt.Sprintf("lognormal:%v,%v", l.a, l.b)
	}
	return l.a.String()
}

// Set parses s with ParseLatency and stores the result in l, for
// flag.Value.
func (l *Latency) Set(s string) error {
	parsed, err := ParseLatency(s)
	if err != nil {
		return err
	}
	*l = parsed
	return nil
}

// Sample draws one latency from r. The result is never negative: a sample
// below 0 becomes 0, which raises the mean of a normal latency whose
// standard deviation is large. A sample too large for a time.Duration is
// cut to the maximum duration.
func (l Latency) Sample(r *rand.Rand) time.Duration {
	switch l.kind {
	case latencyUniform:
		// b-a is at most math.MaxInt64, so the count of values fits in a
		// uint64.
		return l.a + time.Duration(r.Uint64N(uint64(l.b-l.a)+1))
	case latencyNormal:
		return durationOf(float64(l.a) + float64(l.b)*r.NormFloat64())
	case latencyExponential:
		return durationOf(float64(l.a) * r.ExpFloat64())
	case latencyLogNormal:
		mu := math.Log(float64(l.a))
		sigma := (math.Log(float64(l.b)) - mu) / z99
		return durationOf(math.Exp(mu + sigma*r.NormFloat64()))
	}
	return l.a
}

// durationOf rounds ns nanoseconds to a duration between 0 and the maximum
// duration.
func durationOf(ns float64) time.Duration {
	switch {
	case !(ns > 0):
		// Also catches NaN.
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(math.Round(ns))
}

package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// limit holds the workers, sends MaxRequests events, and checks that exactly
// the pipeline size was accepted and the rest got 503. It then releases the
// workers and checks that every accepted event created exactly one Workflow.
func (r *runner) limit(ctx context.Context) {
	size := r.server.Capacity()
	result := &LimitReport{PipelineSize: size}
	r.report.Limit = result

	// Fill the pipeline with the workers held at their first create.
	r.server.HoldWorkers()
	var acceptedIDs []string
	run := r.attack(ctx, r.paced("limit", r.opts.Duration, r.opts.MaxRequests), func(res *vegeta.Result) {
		if res.Code == http.StatusOK {
			acceptedIDs = append(acceptedIDs, res.Headers.Get("X-Event-Id"))
		}
	})
	result.Sent = int(run.Requests)
	result.Accepted = run.Count(http.StatusOK)
	result.Rejected = run.Count(http.StatusServiceUnavailable)
	result.HeldDepth = r.server.Depth()

	other := result.Sent - result.Accepted - result.Rejected
	r.report.check("sent", result.Sent == r.opts.MaxRequests && other == 0,
		"sent %d of %d requests, and %d got neither 200 nor 503; a duration too short for the rate sends fewer", result.Sent, r.opts.MaxRequests, other)
	r.report.check("accepted", result.Accepted == size,
		"accepted %d events with the workers held, and the pipeline size is %d", result.Accepted, size)
	r.report.check("rejected", result.Rejected == result.Sent-size && run.NoRetryAfter == 0,
		"rejected %d events with 503, %d of them without Retry-After, and expected %d rejections", result.Rejected, run.NoRetryAfter, result.Sent-size)
	r.report.check("held", result.HeldDepth == size,
		"the pipeline held %d events with the workers held, and its size is %d", result.HeldDepth, size)

	// Release the workers and count the Workflows of each accepted event.
	r.server.ReleaseWorkers()
	drainCtx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	if err := r.server.WaitIdle(drainCtx); err != nil {
		r.report.check("drained", false, "after the workers were released, %v", err)
		return
	}
	r.report.check("drained", true, "the pipeline emptied after the workers were released")
	r.checkProcessedOnce(ctx, result, acceptedIDs)
}

// checkProcessedOnce checks that each accepted event created exactly one
// Workflow, and that no other event created any.
func (r *runner) checkProcessedOnce(ctx context.Context, result *LimitReport, acceptedIDs []string) {
	// Workflows are counted across all namespaces, because a template may
	// create its Workflow outside the event's namespace.
	workflows, err := r.server.WorkflowsByEvent(ctx, "")
	if err != nil {
		r.report.check("processed once", false, "%v", err)
		return
	}

	total := 0
	for _, count := range workflows {
		total += count
	}
	fromAccepted := 0
	for _, id := range acceptedIDs {
		count := workflows[id]
		fromAccepted += count
		switch {
		case count == 1:
			result.Processed++
		case count == 0:
			result.Missing = append(result.Missing, id)
		default:
			result.Duplicated = append(result.Duplicated, id)
		}
	}
	result.Unexpected = total - fromAccepted

	r.report.check("processed once", result.Processed == len(acceptedIDs) && result.Unexpected == 0,
		"%d of %d accepted events created exactly one Workflow, %d created none, %d more than one, and %d Workflows came from other events. "+
			"The count needs an event that matches exactly one template, as the default event matches event-consumer",
		result.Processed, len(acceptedIDs), len(result.Missing), len(result.Duplicated), result.Unexpected)
}

// rate sends at a fixed rate for the run's duration.
func (r *runner) rate(ctx context.Context) {
	a := r.paced(fmt.Sprintf("%d/s", r.opts.Rate), r.opts.Duration, r.opts.MaxRequests)
	if r.opts.Unpaced {
		a.name, a.rate = fmt.Sprintf("unpaced, %d workers", r.opts.MaxWorkers), 0
	}
	r.attack(ctx, a, nil)
}

// paced returns an attack at the run's rate, or unpaced when so configured.
func (r *runner) paced(name string, duration time.Duration, maxRequests int) attack {
	a := attack{name: name, rate: r.opts.Rate, duration: duration, maxRequests: uint64(maxRequests)}
	if r.opts.Unpaced {
		a.rate = 0
	}
	return a
}

// capacity raises the rate step by step until a step is not sustained,
// then narrows the interval between the highest sustained rate and the
// lowest failed one.
//
// NOTE: the pipeline absorbs a burst of its size, so a step of D seconds
// counts as sustained a rate up to PipelineSize/D per second above the
// rate the workers keep up with. Longer steps give a finer result.
func (r *runner) capacity(ctx context.Context) {
	result := &CapacityReport{MaxP99: milliseconds(r.opts.MaxP99), MaxUnavailable: MaxUnavailable}
	r.report.Capacity = result

	began := time.Now()
	sent := 0
	refineLeft := r.opts.RefineSteps
	for rate := r.opts.StartRate; rate > 0; rate = r.nextRate(result, rate, &refineLeft) {
		// Stop before a step that the time or request budget cannot hold.
		stepRequests := int(float64(rate) * r.opts.StepDuration.Seconds())
		if elapsed := time.Since(began); elapsed+r.opts.StepDuration > r.opts.Duration {
			result.StoppedBy = fmt.Sprintf("the step at %d/s would run past the duration bound of %s", rate, r.opts.Duration)
			return
		}
		if sent+stepRequests > r.opts.MaxRequests {
			result.StoppedBy = fmt.Sprintf("the step at %d/s would send more than the request bound of %d", rate, r.opts.MaxRequests)
			return
		}
		if ctx.Err() != nil {
			result.StoppedBy = fmt.Sprintf("cancelled: %v", ctx.Err())
			return
		}
		r.settle(ctx)

		run := r.attack(ctx, attack{name: fmt.Sprintf("%d/s", rate), rate: rate, duration: r.opts.StepDuration, maxRequests: uint64(stepRequests)}, nil)
		verdict := r.judge(run, stepRequests)
		r.report.Runs[len(r.report.Runs)-1].Step = &verdict
		sent += int(run.Requests)

		if verdict.Sustained {
			result.SustainedRate = max(result.SustainedRate, rate)
		} else if result.FirstFailedRate == 0 || rate < result.FirstFailedRate {
			result.FirstFailedRate, result.FailReason = rate, verdict.Reason
		}
	}
}

// nextRate returns the rate of the next capacity step, or 0 when the
// search is done.
func (r *runner) nextRate(result *CapacityReport, rate int, refineLeft *int) int {
	if result.FirstFailedRate == 0 {
		return max(int(float64(rate)*r.opts.RateFactor), rate+1)
	}
	low, high := result.SustainedRate, result.FirstFailedRate
	// Stop when the interval is within 5% of the failed rate, because
	// steps that close are within the noise of one run.
	if *refineLeft <= 0 || high-low <= max(1, high/20) {
		return 0
	}
	*refineLeft--
	return (low + high) / 2
}

// settle waits before a capacity step for the pipeline to empty, so each
// step starts alike. Against a URL, whose pipeline it cannot see, it waits
// one second.
func (r *runner) settle(ctx context.Context) {
	if r.server == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return
	}
	drainCtx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	_ = r.server.WaitIdle(drainCtx) // a step that starts with a full pipeline fails, which reports it
}

// judge decides whether a capacity step sustained its rate.
func (r *runner) judge(run RunReport, wantRequests int) StepVerdict {
	unavailable := run.Count(http.StatusServiceUnavailable)
	other := int(run.Requests) - run.Count(http.StatusOK) - unavailable
	switch {
	case run.Requests == 0:
		return StepVerdict{Reason: "no request was sent"}
	case float64(unavailable) >= MaxUnavailable*float64(run.Requests):
		return StepVerdict{Reason: fmt.Sprintf("%d of %d responses were 503 (%.2f%%)", unavailable, run.Requests, 100*float64(unavailable)/float64(run.Requests))}
	case other > 0:
		return StepVerdict{Reason: fmt.Sprintf("%d responses were neither 200 nor 503", other)}
	case run.Latency.P99 > milliseconds(r.opts.MaxP99):
		return StepVerdict{Reason: fmt.Sprintf("p99 %.3f ms is over %s", run.Latency.P99, r.opts.MaxP99)}
	case int(run.Requests) < wantRequests*95/100 || run.Rate < 0.95*float64(run.TargetRate):
		return StepVerdict{Reason: fmt.Sprintf("sent %d requests at %.1f/s: the load generator did not reach the rate", run.Requests, run.Rate)}
	}
	return StepVerdict{Sustained: true}
}

package conformance

import (
	"context"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// pipelineRun holds the nonces of the events pipeline.bounded sent: the
// ones accepted while the workers were blocked, and the one rejected after
// them. pipeline.processed-once reads them.
type pipelineRun struct {
	accepted []string
	rejected string
}

func checkPipelineBounded(ctx context.Context, r *run) error {
	if r.target.BlockWorkers == nil || r.target.PipelineSize == 0 {
		return skipf("needs a way to block the server's workers and its pipeline size, which only an in-process server offers")
	}
	if err := r.needResources(pipelineTemplate); err != nil {
		return err
	}
	release, err := r.target.BlockWorkers(ctx)
	if err != nil {
		return fmt.Errorf("block the server's workers: %w", err)
	}
	released := false
	defer func() {
		if !released {
			release()
		}
	}()

	// Fill the pipeline: every event fires conformance-pipeline, so each
	// one a worker takes stops at its Workflow create.
	size := r.target.PipelineSize
	state := &pipelineRun{}
	r.pipeline = state
	var last request
	var lastResp *response
	for range size + 1 {
		nonce := newNonce()
		last = r.post(eventPath(r.target.Namespace, pipelineTemplate), `{}`)
		last.header = http.Header{nonceHeader: {nonce}}
		lastResp, err = r.send(ctx, last)
		if err != nil {
			return err
		}
		if lastResp.status != http.StatusOK {
			state.rejected = nonce
			break
		}
		state.accepted = append(state.accepted, nonce)
	}
	release()
	released = true

	// Exactly size events fit, and the next gets 503 with Retry-After.
	if len(state.accepted) != size {
		return unexpected(last, lastResp, "exactly %d events accepted with the workers blocked and then 503, not %d", size, len(state.accepted))
	}
	if err := expectError(last, lastResp, http.StatusServiceUnavailable); err != nil {
		return err
	}
	if lastResp.header.Get("Retry-After") == "" {
		return unexpected(last, lastResp, "503 with a Retry-After header")
	}
	return nil
}

func checkProcessedOnce(ctx context.Context, r *run) error {
	if r.pipeline == nil || len(r.pipeline.accepted) == 0 {
		return skipf("needs the events that pipeline.bounded accepted, and it did not run or accepted none")
	}
	if err := r.needWorkflowList(); err != nil {
		return err
	}
	state := r.pipeline

	workflows, err := r.waitForWorkflows(ctx, r.target.WaitTimeout, func(all []*unstructured.Unstructured) bool {
		for _, nonce := range state.accepted {
			if len(withNonce(all, nonce)) == 0 {
				return false
			}
		}
		return true
	})
	processed := 0
	for _, nonce := range state.accepted {
		if n := len(withNonce(workflows, nonce)); n > 0 {
			processed++
			if n > 1 {
				return fmt.Errorf("got %d Workflows from one accepted event to %s, want 1", n, pipelineTemplate)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("got Workflows for %d of the %d events accepted while the workers were blocked, want all after they were released (%v)",
			processed, len(state.accepted), err)
	}
	// NOTE: a duplicate created after this moment goes unseen, because
	// the suite cannot know when the server has finished.
	if n := len(withNonce(workflows, state.rejected)); state.rejected != "" && n > 0 {
		return fmt.Errorf("got %d Workflows from the event rejected with 503, want none", n)
	}
	return nil
}

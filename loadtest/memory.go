package loadtest

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"time"
)

// memoryInterval is how often a run samples this process's memory.
const memoryInterval = 250 * time.Millisecond

// sampleMemory calls beforeSample and then samples memory every
// memoryInterval until stop is closed, and then sends the report on the
// returned channel.
func sampleMemory(stop <-chan struct{}, beforeSample func()) <-chan *MemoryReport {
	reports := make(chan *MemoryReport, 1)
	go func() {
		report := &MemoryReport{}
		start := time.Now()
		ticker := time.NewTicker(memoryInterval)
		defer ticker.Stop()
		for {
			beforeSample()
			report.add(readMemory(time.Since(start)))
			select {
			case <-stop:
				beforeSample()
				report.add(readMemory(time.Since(start)))
				reports <- report
				return
			case <-ticker.C:
			}
		}
	}()
	return reports
}

func (r *MemoryReport) add(sample MemorySample) {
	r.Samples = append(r.Samples, sample)
	r.RSSPeak = max(r.RSSPeak, sample.RSS)
	r.HeapPeak = max(r.HeapPeak, sample.Heap)
}

// Names of the runtime metrics a sample reads.
const (
	heapObjectsMetric = "/memory/classes/heap/objects:bytes"
	goroutinesMetric  = "/sched/goroutines:goroutines"
)

// readMemory samples the resident set size and the Go heap of this process.
func readMemory(elapsed time.Duration) MemorySample {
	samples := []metrics.Sample{{Name: heapObjectsMetric}, {Name: goroutinesMetric}}
	metrics.Read(samples)
	return MemorySample{
		Seconds:    elapsed.Seconds(),
		RSS:        residentMiB(),
		Heap:       float64(samples[0].Value.Uint64()) / (1 << 20),
		Goroutines: int(samples[1].Value.Uint64()),
	}
}

// residentMiB returns VmRSS from /proc/self/status, or 0 where there is no
// such file, as outside Linux.
func residentMiB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	scanner := bufio.NewScanner(bytes.NewReader(status))
	for scanner.Scan() {
		value, found := bytes.CutPrefix(scanner.Bytes(), []byte("VmRSS:"))
		if !found {
			continue
		}
		kibibytes, err := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(value), []byte(" kB"))), 64)
		if err != nil {
			return 0
		}
		return kibibytes / 1024
	}
	return 0
}

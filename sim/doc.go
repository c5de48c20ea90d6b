// Package sim replays recorded webhook streams against client-go fake
// clientsets seeded from fixtures, and reports what each event matched and
// created.
//
// TODO: the package holds only this documentation so far. Replay, recording
// and the comparison with expected results are not built yet.
package sim

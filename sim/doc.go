// Package sim records the requests a wfevents server receives as streams,
// imports them from HAR files, and replays recorded webhook streams against
// client-go fake clientsets seeded from fixtures, reporting what each event
// matched and created.
//
// TODO: replay and the comparison with expected results are not built yet.
package sim

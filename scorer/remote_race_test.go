//go:build race

package scorer

// remoteRace: the race detector makes sync.Pool drop items at random, so
// pooled scratch (json.Valid's scanner) allocates; allocation counts allow
// for that under it.
const remoteRace = true

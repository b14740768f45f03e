//go:build !race

package scorer

const remoteRace = false

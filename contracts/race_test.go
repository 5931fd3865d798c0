//go:build race

package contracts

// raceEnabled: the race detector makes sync.Pool drop buffers at random,
// so allocation counts that rely on a pool are not checked under it.
const raceEnabled = true

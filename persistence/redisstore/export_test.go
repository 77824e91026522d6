package redisstore

// SetChunk sets the chunk size until the returned func restores it. Tests
// using it must not run in parallel.
func SetChunk(n int) (restore func()) {
	old := chunk
	chunk = n
	return func() { chunk = old }
}

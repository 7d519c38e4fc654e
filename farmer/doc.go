// Package farmer is Sluice's storage farmer: the Go counterpart of Storj's
// downstream-farmer. It takes chunk contracts from a node, keeps the bytes
// on disk, and answers every proof-of-storage challenge before its due time.
//
// The pieces, from the bottom up:
//
//   - Client speaks the node's farmer API (/api/downstream/v1). It is a thin
//     typed wrapper over one shared *http.Client: no retries, no state
//     besides the node's URL, cheap to create per farmer.
//   - WriteChunk, VerifyChunk, ProveChunk and ProveReader handle chunk bytes:
//     stream them to disk while checking SHA-256, size and Merkle root, and
//     answer a challenge from them.
//   - Backoff, RetryDelay, LatestSend and SendTime are the pure timing rules
//     the loop follows: when to retry and when to send a batch.
//   - Run is the farmer itself: one event-loop goroutine per farmer that owns
//     all contract state, plus at most four short-lived helper goroutines
//     (fill, prove, answer, challenge), each running one job at a time. An
//     idle farmer is a single goroutine blocked on a timer, so thousands of
//     contracts per farmer, and many farmers per process, are cheap.
package farmer

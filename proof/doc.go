// Package proof holds Sluice's proof-of-storage scheme and the seeded bytes
// of prototype chunks.
//
// The default scheme, merkle-segment, cuts a chunk into fixed-size leaves
// and commits to them with an RFC 6962 shaped Merkle tree: leaf hash
// SHA-256(0x00 ‖ leaf), inner node SHA-256(0x01 ‖ left ‖ right), and a node
// without a right sibling promoted unchanged to the next level. The node
// keeps only the root (in a Tag); each challenge names a few leaves drawn
// from a fresh random seed, and the farmer answers with those leaves and
// their audit paths. Challenges are unlimited and the node's state is
// constant.
//
// Everything here is pure: no goroutines and no I/O besides the io.Reader
// and io.ReaderAt values passed in. The code is hot on both sides (the node
// verifies, the simulator's farmers prove), so it has benchmarks and fuzz
// targets.
package proof

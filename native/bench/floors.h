// Benchmark floors: the least work a pass over a kernel's input can do, measured in the same
// run as the kernel (DESIGN.md convention 11). Only the bench addon (capibara_bench.node) has
// them; plain C++ over raw pointers, no Node-API.
#pragma once
#include <cstdint>

namespace capibara {
namespace bench {

// One pass over logits [tokens, experts] computing each row's max and sum (normaliser = false:
// the read floor of the gating kernels) or max and softmax normaliser sum(exp(x - max))
// (normaliser = true: the least a softmax gate reporting probabilities computes). Returns a
// checksum so the pass cannot be optimized away. Finite logits assumed.
double GatingFloor(const float* logits, int64_t tokens, int64_t experts, bool normaliser);

// Reads `n` bytes once with one cheap vector op per register (XOR fold) and returns the fold;
// with threads > 1 that many threads each read a contiguous part at once.
uint64_t ReadFloor(const int8_t* bytes, int64_t n, int threads = 1);

// The instruction set the floors run with (the same choice as the production kernels').
const char* FloorIsa();

}  // namespace bench
}  // namespace capibara

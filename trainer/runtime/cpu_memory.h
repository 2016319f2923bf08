// Peak CPU tensor memory of this process: a counting allocator installed as c10's CPU allocator keeps the bytes of
// live CPU tensors and their peak (two atomics; the CUDA caching allocator's peaks are cuda_memory.h). It counts what
// tensors hold, not the heap's slack, malloc's own blocks or non-tensor buffers (tokenised data, file writes), so a
// prediction of tensor memory (`aligntrain plan`) can be held against it byte for byte.
#pragma once

#include <cstdint>

namespace aligntrain::runtime {

// Makes the counting allocator c10's CPU allocator (priority above the default's). Call once in main() before any
// tensor is made; a tensor allocated earlier is freed by its own allocator and never counted. Calling it again does
// nothing.
void track_cpu_memory();

// Whether track_cpu_memory() ran in this process.
bool cpu_memory_tracked();

struct CpuMemory {
  int64_t current_bytes = 0;  // bytes of live CPU tensors now (counted since track_cpu_memory)
  int64_t peak_bytes = 0;     // the most current_bytes has been since the last reset
};

CpuMemory cpu_memory();

// Starts a new peak from the current bytes (e.g. at a stage's start).
void reset_cpu_memory_peak();

}  // namespace aligntrain::runtime

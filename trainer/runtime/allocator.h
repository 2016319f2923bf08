// Keeping freed memory in the process. glibc returns large blocks to the kernel on free and maps fresh, zeroed
// pages for the next one; a training step allocates the same large activations every step, so by default much of
// a CPU step is page faults (bench/RESULTS.md: 650–770 ms of kernel time per step). keep_freed_memory() raises the
// mmap threshold to its maximum (32 MiB) and keeps up to 2 GiB of freed heap, costing some resident memory.
#pragma once

namespace aligntrain::runtime {

// Call first in main(). ALIGNTRAIN_MALLOC=default in the environment leaves glibc's defaults. Returns the mode used
// ("keep" or "default") for the log.
const char* keep_freed_memory();

}  // namespace aligntrain::runtime

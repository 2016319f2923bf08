// The CUDA caching allocator's configuration. PyTorch's allocator reads PYTORCH_ALLOC_CONF (or its older name
// PYTORCH_CUDA_ALLOC_CONF) once, when CUDA memory is first allocated. By default it reserves fixed-size segments;
// at long sequence lengths, activations of many different sizes then leave reserved-but-unusable gaps
// (fragmentation: reserved memory well above allocated, and out-of-memory errors with memory free).
// expandable_segments:True maps one growing segment per stream instead, which removes most of that.
#pragma once

namespace aligntrain::runtime {

// Call in main() before anything touches CUDA. When the user has set neither PYTORCH_ALLOC_CONF nor
// PYTORCH_CUDA_ALLOC_CONF, sets PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True in this process's environment;
// otherwise leaves the user's setting alone. Returns the setting in effect (for the log).
const char* configure_cuda_allocator();

}  // namespace aligntrain::runtime

// Host reads of tensor values in the training step, counted.
//
// A value read on the host from a device tensor (.item(), a copy to the CPU) makes the host wait for the device
// (a host–device synchronisation). The training step reads device values only where it logs them; every place in
// the step code that does read one goes through the functions below, so that a test can count them (train_loop_test:
// no read in a step that logs nothing). On the CPU the code path is the same, so the count is the same there.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace aligntrain::runtime {

// Host reads so far in this process (all threads).
int64_t host_syncs();

// `t` copied to the CPU (counted once).
at::Tensor to_host(const at::Tensor& t);

// The value of one-element `t` (counted once).
template <class T>
T host_value(const at::Tensor& t);

}  // namespace aligntrain::runtime

// SIGTERM / SIGINT as a request to stop cleanly (DESIGN.md §8): the handler only sets a flag; the training loop
// reads it after each step (agreed over all ranks), writes a checkpoint and exits 0. A second signal while the
// checkpoint is written is ignored; SIGKILL is the way to stop at once.
#pragma once

namespace aligntrain::runtime {

void install_stop_handlers();
bool stop_requested();
int stop_signal();  // the signal number received, 0 if none

}  // namespace aligntrain::runtime

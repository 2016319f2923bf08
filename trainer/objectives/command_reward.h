// The `command` reward of online stages (issue 17): a user program scores samples. aligntrain starts it with
// `/bin/sh -c COMMAND`, writes one JSON object per sample to its standard input ({"prompt", "completion", and the
// data line's other fields}), closes it, and reads one JSON number per line from its standard output, in order.
// Its standard error is kept and its last lines quoted in errors. Anything else is a DataError (exit 3) naming the
// command
// and what went wrong: a line that is not a JSON number (its number and text), too few or too many lines, a non-zero
// exit or a signal (with the last lines of its standard error), or no answer within the timeout (the program and
// its children are killed). Nothing is retried: a reward that cannot be trusted stops the run before the step
// updates anything.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace aligntrain::objectives {

struct CommandReward {
  std::string command;         // run by /bin/sh -c
  double timeout_seconds = 60;  // for one batch, from start to exit
};

// The scores of `samples` (one JSON object each), in order. Throws DataError as described above.
std::vector<double> run_command_reward(const CommandReward& reward, const std::vector<nlohmann::json>& samples);

}  // namespace aligntrain::objectives

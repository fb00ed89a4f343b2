// Where the user's configuration lives, and reading it. Shared by the config module only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "hoist/status.h"

namespace hoist::config {

// The value of an environment variable, "" when unset.
std::string GetEnv(const char* name);
// $HOME, else the home directory of the effective user from the password database; "" when
// neither is known.
std::string HomeDir();
// ${XDG_CONFIG_HOME:-$HOME/.config}; "" when neither is known.
std::string UserConfigDir();

// True when `path` names an existing regular file (symlinks followed).
bool IsRegularFile(const std::string& path);
// True when `path` names an existing directory (symlinks followed).
bool IsDirectory(const std::string& path);

// Reads a whole configuration file the user owns. Unlike ReadFileToString a final symlink is
// followed (users keep dotfiles as links). A missing file is NotFound; one larger than
// max_bytes is ResourceExhausted; a directory or device is FailedPrecondition.
Result<std::string> ReadUserFile(const std::string& path, size_t max_bytes);

// The names (not paths) of the entries of directory `dir`, sorted. A missing directory gives
// an empty list; other failures are errors naming `dir`.
Result<std::vector<std::string>> ListDirectory(const std::string& dir);

}  // namespace hoist::config

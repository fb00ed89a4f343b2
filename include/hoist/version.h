// hoist's version and the versions of the libraries libhoist is linked with.
#pragma once

#include <string>
#include <vector>

namespace hoist {

// libhoist's version, "MAJOR.MINOR.PATCH" (the project version it was built as).
std::string Version();

struct LibraryVersion {
  std::string name;     // "libcurl", "OpenSSL", "zstd", "isa-l"
  std::string version;  // as the library reports it at run time
  // false when the library cannot tell at run time (isa-l): `version` is then the one of the
  // headers libhoist was built with.
  bool run_time = true;
};

// The libraries libhoist uses, each asked for its version where it can tell.
std::vector<LibraryVersion> LinkedLibraryVersions();

}  // namespace hoist

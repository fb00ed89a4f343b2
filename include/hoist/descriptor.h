// The common currency of every stage: a typed, sized, content-addressed pointer to a blob.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hoist/digest.h"

namespace hoist {

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", ... (GOARCH names)
  std::string variant;       // "v7", "v8", or empty
  std::string os_version;
  std::vector<std::string> os_features;

  // "linux/arm64/v8"; the variant only when present.
  std::string String() const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
};

}  // namespace hoist

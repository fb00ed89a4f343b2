// The image configuration blob (OCI image config or Docker container image v1 JSON): only the
// fields a pull needs, validated.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hoist/descriptor.h"
#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::manifest {

struct ImageConfig {
  Platform platform;             // os, architecture, variant, os.version, os.features as written
  std::vector<Digest> diff_ids;  // rootfs.diff_ids: digests of the uncompressed layers, base first
  std::string raw;               // the config bytes as given
  std::string created;           // "created" as written (RFC 3339); "" if absent or not a string
};

// Parses a config blob. Requires rootfs.type == "layers" and rootfs.diff_ids an array of valid
// digests (it may be empty); os, architecture and variant, when present, must be strings.
// Over kMaxManifestBytes: ResourceExhausted; anything else wrong: DataLoss.
Result<ImageConfig> ParseConfig(std::string_view bytes);

}  // namespace hoist::manifest

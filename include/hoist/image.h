// What a pull leaves behind, as the library reports it.
#pragma once

#include <string>
#include <vector>

#include "hoist/descriptor.h"

namespace hoist {

struct Image {
  std::string reference;    // normalized: "docker.io/library/alpine:3.20", "host/app@sha256:…"
  Digest repo_digest;       // what the reference resolved to (an index for multi-platform images)
  Descriptor manifest;      // the image manifest for the chosen platform
  Platform platform;        // the image's platform (from its config)
  Descriptor config;        // empty digest for schema1 images, which have none
  std::string config_json;  // the config blob as stored ("" for schema1)
  std::vector<Descriptor> layers;  // base layer first
  bool downloaded = false;  // false when every blob was already in the store
  // The manifest as stored: the registry's own bytes, whose digest is manifest.digest.
  std::string manifest_json;
  // The config's "created" as written (RFC 3339); "" when it has none (schema1).
  std::string created;
};

struct ImageSummary {
  std::string reference;
  Digest digest;     // the manifest's digest
  int64_t size = 0;  // manifest + config + layers, compressed, as stored
  // What the reference resolved to (Image::repo_digest).
  Digest repo_digest;
  // The config's "created" as written (RFC 3339); "" when it has none.
  std::string created;
};

}  // namespace hoist

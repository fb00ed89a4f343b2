// Renditions of a manifest in another format, for readers that know only one.
#pragma once

#include <string>

#include "hoist/status.h"
#include "manifest/manifest.h"

namespace hoist::manifest {

// The OCI image manifest equivalent of a Docker schema2 manifest: the same config and layer
// blobs (digests, sizes, urls, annotations) under OCI media types — the Docker config is a
// valid OCI config, and a Docker gzip layer is an OCI tar+gzip layer. Deterministic: the same
// input gives the same bytes. This is how an OCI image layout holds a Docker image (skopeo
// converts the same way when it copies one into an `oci:` layout).
// InvalidArgument for anything but a Docker schema2 manifest.
Result<std::string> DockerToOciManifest(const Decoded& docker);

}  // namespace hoist::manifest

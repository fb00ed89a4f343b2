// What the image records keep alive, for gc (what not to reclaim) and verify (what to check).
//
// A record references: its manifest (the OCI rendition, for a Docker image), the registry's own
// manifest (io.hoist.manifest.digest) and the index it resolved to (io.hoist.repo.digest), the
// manifest's config and layer blobs, and the layer directories of the config's diff_ids. The
// index is kept only as the reference's identity: its other platforms are not followed. A record
// that names an index (written by another tool) references the children of it that are here, up
// to kMaxManifestsPerRecord manifests deep.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "content/store.h"
#include "hoist/descriptor.h"
#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::image {

inline constexpr size_t kMaxManifestsPerRecord = 1024;

struct References {
  std::map<Digest, std::string> blobs;   // digest → the name of a record that references it
  std::map<Digest, std::string> layers;  // diff_id → the name of a record that references it
  // Referenced blobs that are here but cannot be read or decoded (or a record whose annotation
  // is not a digest, under the record's digest), with why, naming the image.
  std::map<Digest, Status> unreadable;
};

// Everything `records` (entries of index.json, see image/records.h) reference. Reads only; a
// blob that is missing is not followed (and not an error: verify reports it as missing).
References CollectReferences(const content::Store& store, const std::vector<Descriptor>& records);

}  // namespace hoist::image

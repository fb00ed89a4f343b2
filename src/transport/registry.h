// A registry as a transport (docker://REF): the source reads an image by tag or digest and
// streams its blobs through the fetch stage (retries, Range resume); the destination pushes
// them by the OCI distribution spec: HEAD (skip what is there), a cross-repository mount
// within one registry, monolithic or chunked uploads that restart their session when
// interrupted, each blob's digest verified before its final PUT, the manifest PUT last. Neither
// needs the store: `copy docker://A docker://B` goes blob by blob with no local copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hoist/reference.h"
#include "registry/fetcher.h"
#include "registry/http.h"
#include "registry/registry.h"
#include "transport/transport.h"

namespace hoist::transport {

struct RegistryTransportOptions {
  registry::RetryPolicy retry;  // every request, and each blob's upload session as a whole
  registry::TransferLimits limits;
  const std::atomic<bool>* cancel = nullptr;  // ends transfers and waits (may be null)
  registry::RetryNotice notice;               // one line per retry (may be empty)
  // Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size, then the
  // final PUT. An upload holds at most one chunk in memory.
  int64_t chunk_size = 8 << 20;
  // Destination: repositories of the same registry to mount blobs from (tried in order, after
  // the source's own repository when the source is this registry too).
  std::vector<std::string> mount_from;
};

// The image `ref` names in `repo` (a tag: what the registry answers for it, its digest
// verified against the Docker-Content-Digest it claims; a digest: verified against that).
// `repo` (and the Registry, Authorizer and credentials behind it) must outlive the source.
std::unique_ptr<ImageSource> OpenRegistrySource(std::unique_ptr<registry::Repository> repo,
                                                const Reference& ref,
                                                RegistryTransportOptions options);

// Pushes to `repo`. Commit puts the top manifest under the tag of names[0] (a reference,
// normally the destination's own) or, without names, of `ref`; by digest when that has none
// (a digest it names must be the top manifest's).
std::unique_ptr<ImageDestination> OpenRegistryDestination(
    std::unique_ptr<registry::Repository> repo, const Reference& ref,
    RegistryTransportOptions options);

}  // namespace hoist::transport

// The fetch stage of a pull: one blob from its sources into the store, verified, and for a
// layer extracted in the same pass (blob digest, ingest write, inflate, diff_id, extraction
// into a private staging directory). Retries and Range resume are the registry::Fetcher's;
// this stage adds what the store and the layer need around them: resuming what an earlier
// pull kept in ingest/, starting again from zero when a source restarts or kept data turns out
// not to be the blob, and noticing when another process committed the blob or the layer.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "content/store.h"
#include "hoist/descriptor.h"
#include "pull/inflight.h"
#include "pull/progress.h"
#include "registry/fetcher.h"
#include "registry/registry.h"
#include "unpack/layer.h"

namespace hoist::pull {

// One blob to get.
struct BlobJob {
  Descriptor blob;
  // Set for a layer to extract as well (the image config's diff_id); unset for a blob that is
  // only stored (a config, a schema1 layer).
  std::optional<Digest> diff_id;
  // Whether the progress hears of the blob's states (not for the config, as in docker); its
  // retries are reported either way.
  bool report = true;
  // The job waited for another pull of this process that had it (see Claim): what it finds
  // stored is reported as complete, not as "already exists".
  bool waited = false;
};

// Where a blob's bytes come from: calls `attempt` once per source in turn until one succeeds;
// `attempt` calls the SourceFetch it is given with its sink. `http`: the calling worker's.
using SourceFetch = registry::Fetcher::SourceFetch;
using BlobSources = std::function<Status(registry::HttpClient& http, const Descriptor& d,
                                         const std::function<Status(const SourceFetch&)>& attempt)>;

// A registry's sources of a blob, through `fetcher` (retries, Range resume; each retry is
// reported to `progress`): a foreign layer's `urls` when `allow_foreign_urls`, then `repo`.
// All must outlive the result.
BlobSources RegistrySources(registry::Repository& repo, registry::Fetcher& fetcher,
                            Progress& progress, bool allow_foreign_urls);

struct FetchOptions {
  unpack::LayerLimits limits;  // per layer; limits.image_budget is shared by the image
  // Told about device nodes a layer holds that could not be created.
  std::function<void(const std::string&)> notice;
  // Either flag (may be null) ends a wait for another pull's claim (Cancelled).
  const std::atomic<bool>* cancel = nullptr;
  const std::atomic<bool>* also_cancel = nullptr;
};

// Thread-safe for distinct blobs: one serves every worker of a pull, each with its own
// HttpClient. All references must outlive it.
class BlobFetcher {
 public:
  BlobFetcher(content::Store& store, BlobSources sources, Progress& progress, FetchOptions options)
      : store_(store),
        sources_(std::move(sources)),
        progress_(progress),
        options_(std::move(options)) {}

  // Makes sure the blob is committed to the store, and the layer (if any) extracted and
  // committed. Returns whether it had to be fetched (it was not in the store). A layer's lock
  // is taken before its blob's, in every process. The first source continues from what an
  // earlier fetch kept in ingest/; every other one starts from zero.
  Result<bool> Fetch(registry::HttpClient& http, const BlobJob& job);

  // The claim on a blob of this store (pull::Claim), taken now.
  Claim ClaimOf(const Descriptor& d) const {
    return Claim::Take(store_.layout().BlobFile(d.digest));
  }
  // Fetch under `claim`: while another pull of this process owns the blob, waits for it
  // (Waiting for other), then Fetch, which finds the blob done or does it when the other pull
  // failed. Returns whether the blob was not in the store when this pull began.
  Result<bool> FetchClaimed(registry::HttpClient& http, BlobJob job, Claim claim);

 private:
  content::Store& store_;
  const BlobSources sources_;
  Progress& progress_;
  const FetchOptions options_;
};

}  // namespace hoist::pull

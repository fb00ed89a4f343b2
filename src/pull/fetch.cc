#include "pull/fetch.h"

#include <memory>

#include "base/status_macros.h"
#include "manifest/media_types.h"

namespace hoist::pull {

BlobSources RegistrySources(registry::Repository& repo, registry::Fetcher& fetcher,
                            Progress& progress, bool allow_foreign_urls) {
  return [&repo, &fetcher, &progress, allow_foreign_urls](
             registry::HttpClient& http, const Descriptor& d,
             const std::function<Status(const SourceFetch&)>& attempt) -> Status {
    auto notice = [&](const std::string& line) {
      progress.Report(d, ProgressState::kRetrying, 0, line);
    };
    const bool foreign = manifest::IsForeignLayerType(d.media_type) && !d.urls.empty();
    Status s = fetcher.FetchFromSources(
        repo, http, d, foreign && allow_foreign_urls ? d.urls : std::vector<std::string>{}, notice,
        attempt);
    if (!s.ok() && foreign && !allow_foreign_urls) {
      return PermissionDeniedError(
          "foreign layer: fetching it from its URLs is refused by "
          "configuration, and the registry does not serve it (" +
          s.message() + ")");
    }
    return s;
  };
}

Result<bool> BlobFetcher::Fetch(registry::HttpClient& http, const BlobJob& job) {
  const Descriptor& d = job.blob;
  auto report = [&](ProgressState state, int64_t current = 0) {
    if (job.report) progress_.Report(d, state, current);
  };
  auto on_wait = [&] { report(ProgressState::kWaitingForOther); };
  std::unique_ptr<unpack::LayerUnpacker> layer;  // only for a layer
  std::unique_ptr<content::Writer> writer;
  // If extraction fails, the rest of the blob is still read (bounded by its declared size) and
  // hashed, so that bytes that are not the blob are reported as such, not as whatever the
  // inflater or tar reader made of them.
  Status extract;
  auto feed = [&](const char* data, size_t n) {
    if (layer != nullptr && extract.ok()) extract = layer->Feed(data, n);  // no-op if extracted
  };
  // A new staging directory and a new blob writer, in lock order; whatever the previous ones
  // held (extracted files, hash state) is dropped with them. `resume`: the writer continues
  // from the partial data an earlier pull left in ingest/, which is extracted first
  // (extraction cannot resume); otherwise the partial data is emptied too.
  auto open = [&](bool resume) -> Status {
    writer.reset();
    layer.reset();
    extract = OkStatus();
    if (job.diff_id) {
      ASSIGN_OR_RETURN(layer, unpack::LayerUnpacker::Open(store_, *job.diff_id, d.digest,
                                                          d.media_type, options_.limits, on_wait));
    }
    content::WriterOptions o;
    o.on_wait = on_wait;
    o.resume = resume;
    o.replay = [&](const char* data, size_t n) {
      feed(data, n);
      return OkStatus();
    };
    ASSIGN_OR_RETURN(writer, store_.OpenWriter(d.digest, d.size, o));
    return OkStatus();
  };
  // The blob was committed, by this pull or another: the layer (when there is one that is not
  // extracted yet) is extracted from the stored blob, which is verified and read-only, so its
  // lock is released first.
  auto extract_stored = [&]() -> Status {
    writer.reset();
    if (layer == nullptr || layer->already_exists()) return OkStatus();
    report(ProgressState::kExtracting);
    ByteProgress extracted(progress_, d, ProgressState::kExtracting);
    int64_t fed = 0;
    RETURN_IF_ERROR(
        unpack::FeedFile(store_.layout().BlobFile(d.digest), [&](const char* data, size_t n) {
          RETURN_IF_ERROR(layer->Feed(data, n));
          extracted.Update(fed += static_cast<int64_t>(n));
          return OkStatus();
        }));
    extracted.Update(fed, true);
    return layer->Finish();
  };
  // The layer made visible, once its blob is committed.
  auto commit_layer = [&]() -> Status {
    if (layer == nullptr) return OkStatus();
    if (!layer->already_exists()) {
      if (layer->skipped_devices() > 0 && options_.notice) {
        options_.notice("layer " + job.diff_id->String() + ": " +
                        std::to_string(layer->skipped_devices()) +
                        " device nodes not created (that needs root)");
      }
      RETURN_IF_ERROR(layer->Commit());
    }
    report(ProgressState::kPullComplete, d.size);
    return OkStatus();
  };

  RETURN_IF_ERROR(open(true));
  if (writer->already_committed()) {
    if (layer == nullptr || layer->already_exists()) {
      report(job.waited ? ProgressState::kPullComplete : ProgressState::kAlreadyExists, d.size);
      return false;
    }
    RETURN_IF_ERROR(extract_stored());
    RETURN_IF_ERROR(commit_layer());
    return false;
  }

  report(ProgressState::kDownloading, writer->written());
  ByteProgress bytes(progress_, d, ProgressState::kDownloading);
  bool fresh = true;             // the writer and the staging directory hold this source's bytes
  bool stored_by_other = false;  // another process committed the blob meanwhile
  RETURN_IF_ERROR(sources_(http, d, [&](const SourceFetch& fetch) -> Status {
    // Only the first source resumes what an earlier pull kept in ingest/; every other one
    // hashes and extracts from byte zero, so that a source that sent wrong bytes leaves no
    // trace in the next attempt's blob or layer.
    if (!fresh) RETURN_IF_ERROR(open(false));
    bool from_kept = fresh && writer->written() > 0;
    fresh = false;
    for (;;) {
      if (writer->already_committed()) {
        stored_by_other = true;
        return OkStatus();
      }
      // A Range resume continues both the blob writer and the extraction, which hold their
      // state in memory: nothing is fetched or extracted twice. A source that starts again
      // from zero gets a new writer and a new staging directory.
      auto restart = [&]() -> Status {
        RETURN_IF_ERROR(open(false));
        if (writer->already_committed()) return AlreadyExistsError("stored by another process");
        return OkStatus();
      };
      auto write = [&](const char* data, size_t n) -> Status {
        RETURN_IF_ERROR(writer->Write(data, n));
        feed(data, n);
        if (job.report) bytes.Update(writer->written());  // extracted as it arrives: one count
        return OkStatus();
      };
      Status fetched = fetch(registry::BlobSink{restart, write, writer->written()});
      if (writer != nullptr && writer->already_committed()) {
        stored_by_other = true;
        return OkStatus();
      }
      RETURN_IF_ERROR(fetched);
      report(ProgressState::kVerifying, writer->written());
      // Both digests before anything becomes visible: the blob's, then the diff_id.
      Status verified = writer->Verify();
      if (!verified.ok() && from_kept) {
        // The kept data was not the blob's beginning (a crash may lose what was not synced):
        // it is gone with the failed writer; once more, the whole blob.
        from_kept = false;
        RETURN_IF_ERROR(open(false));
        continue;
      }
      RETURN_IF_ERROR(verified);
      RETURN_IF_ERROR(extract);
      if (layer != nullptr) RETURN_IF_ERROR(layer->Finish());
      return writer->Commit();
    }
  }));
  if (stored_by_other) RETURN_IF_ERROR(extract_stored());
  if (!stored_by_other || layer == nullptr) report(ProgressState::kDownloadComplete, d.size);
  RETURN_IF_ERROR(commit_layer());
  return true;  // the blob was not here when this pull began
}

Result<bool> BlobFetcher::FetchClaimed(registry::HttpClient& http, BlobJob job, Claim claim) {
  while (!claim.owner()) {
    if (job.report) progress_.Report(job.blob, ProgressState::kWaitingForOther);
    RETURN_IF_ERROR(claim.Wait(options_.cancel, options_.also_cancel));
    job.waited = true;
  }
  ASSIGN_OR_RETURN(bool got, Fetch(http, job));
  return got || job.waited;  // waited: another pull got it for this one
}

}  // namespace hoist::pull

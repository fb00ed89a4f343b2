#include "transport/store.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/status_macros.h"
#include "base/strings.h"
#include "image/records.h"
#include "manifest/config.h"
#include "manifest/platform.h"
#include "unpack/layer.h"

namespace hoist::transport {

Result<std::unique_ptr<StoreSource>> StoreSource::Open(const content::Store& store,
                                                       std::string_view text) {
  ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
  ASSIGN_OR_RETURN(Image image, image::Find(store, ref));
  return std::unique_ptr<StoreSource>(new StoreSource(store, std::move(image)));
}

Result<ManifestBytes> StoreSource::TopManifest() {
  ASSIGN_OR_RETURN(ManifestBytes m,
                   MakeManifestBytes(image_.manifest_json, image_.manifest.media_type));
  m.digest = image_.manifest.digest;
  return m;
}

Result<ManifestBytes> StoreSource::Manifest(const Digest& digest) {
  ASSIGN_OR_RETURN(std::string bytes, store_.ReadBlob(digest, manifest::kMaxManifestBytes));
  return MakeManifestBytes(std::move(bytes), "");
}

Status StoreSource::Blob(const Descriptor& d, const registry::BlobSink& sink) {
  const content::Layout& layout = store_.layout();
  ASSIGN_OR_RETURN(UniqueFd dir, store_.OpenDir(layout.BlobAlgorithmDir(d.digest.algorithm()),
                                                /*create=*/false));
  UniqueFd fd(::openat(dir.get(), d.digest.hex().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFoundError("blob not in the store (pull the image again)");
    return ErrnoError(errno, "open " + layout.Relative(layout.BlobFile(d.digest)));
  }
  off_t at = sink.held > 0 ? static_cast<off_t>(sink.held) : 0;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + layout.Relative(layout.BlobFile(d.digest)));
    if (n == 0) return OkStatus();
    RETURN_IF_ERROR(sink.write(buf.data(), static_cast<size_t>(n)));
    at += n;
  }
}

StoreDestination::StoreDestination(content::Store& store, pull::FetchOptions options,
                                   ProgressCallback progress, uint64_t max_image_bytes)
    : store_(store),
      options_(std::move(options)),
      callback_(std::move(progress)),
      progress_(callback_) {
  if (max_image_bytes > 0) {
    budget_ = std::make_unique<unpack::ImageBudget>(max_image_bytes);
    options_.limits.image_budget = budget_.get();
  }
}

Result<bool> StoreDestination::Reuse(const BlobInfo& b) {
  if (!store_.Has(b.blob.digest, b.blob.size)) return false;
  if (b.diff_id && !unpack::LayerExists(store_, *b.diff_id)) return false;
  if (b.diff_id) {
    progress_.Report(b.blob, ProgressState::kAlreadyExists);
    std::lock_guard<std::mutex> lock(mu_);
    layers_.push_back(*b.diff_id);
  }
  return true;
}

Status StoreDestination::PutBlob(const BlobInfo& b, ImageSource& src) {
  pull::BlobSources sources = [&src](
                                  registry::HttpClient&, const Descriptor& d,
                                  const std::function<Status(const pull::SourceFetch&)>& attempt) {
    return attempt([&](const registry::BlobSink& sink) { return src.Blob(d, sink); });
  };
  pull::BlobFetcher fetcher(store_, std::move(sources), progress_, options_);
  registry::HttpClient http(options_.cancel, options_.also_cancel);
  const bool layer = b.diff_id.has_value();
  if (layer) progress_.Report(b.blob, ProgressState::kWaiting);
  RETURN_IF_ERROR(
      fetcher.FetchClaimed(http, {b.blob, b.diff_id, layer}, fetcher.ClaimOf(b.blob)).status());
  if (layer) {
    std::lock_guard<std::mutex> lock(mu_);
    layers_.push_back(*b.diff_id);
  }
  return OkStatus();
}

Status StoreDestination::PutManifest(const ManifestBytes& m) {
  return store_.WriteBlob(m.digest, m.bytes);
}

Status StoreDestination::Commit(const ManifestBytes& top, const std::vector<std::string>& names) {
  if (names.empty()) {
    return InvalidArgumentError("the image has no name to record it by (give one with --tag)");
  }
  RETURN_IF_ERROR(PutManifest(top));
  std::vector<Digest> layers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    layers = layers_;
  }
  RETURN_IF_ERROR(unpack::SyncLayers(store_, layers).WithContext("sync the store"));
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(top.media_type, top.bytes));
  Descriptor desc{top.media_type, top.digest, static_cast<int64_t>(top.bytes.size()), {}, {}, {}};
  if (decoded.kind == manifest::Kind::kIndex) {
    ASSIGN_OR_RETURN(desc, manifest::SelectPlatform(decoded.index, manifest::HostPlatform()));
    ASSIGN_OR_RETURN(std::string bytes, store_.ReadBlob(desc.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(decoded, manifest::Decode(desc.media_type, bytes));
  }
  if (decoded.kind == manifest::Kind::kImageManifest) {
    ASSIGN_OR_RETURN(std::string config,
                     store_.ReadBlob(decoded.manifest.config.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(config));
    desc.platform = cfg.platform;
  }
  for (const std::string& name : names) {
    auto ref = Reference::Parse(name);
    if (!ref.ok()) return ref.status().WithContext("name " + Quote(name));
    ASSIGN_OR_RETURN(Image image, image::Record(store_, *ref, top.digest, desc, decoded));
    committed_.push_back(std::move(image));
  }
  return OkStatus();
}

}  // namespace hoist::transport

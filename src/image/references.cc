#include "image/references.h"

#include <utility>

#include "image/records.h"
#include "manifest/config.h"
#include "manifest/manifest.h"

namespace hoist::image {
namespace {

void AddRecord(const content::Store& store, const Descriptor& record, References* refs) {
  const std::string name = NameOf(record);
  auto unreadable = [&](const Digest& d, const Status& s) {
    refs->unreadable.emplace(d, s.WithContext("image " + name));
  };
  std::vector<std::pair<Digest, std::string>> manifests = {{record.digest, record.media_type}};
  refs->blobs.emplace(record.digest, name);
  for (const char* key : {kManifestDigestAnnotation, kRepoDigestAnnotation}) {
    auto it = record.annotations.find(key);
    if (it == record.annotations.end()) continue;
    auto d = Digest::Parse(it->second);
    if (!d.ok()) {
      unreadable(record.digest, d.status().WithContext(std::string("annotation ") + key));
      continue;
    }
    refs->blobs.emplace(*d, name);
    // The index is kept only as the identity of the reference: the record's own manifest is
    // the platform's, so the index's other children are not followed.
    if (std::string(key) == kManifestDigestAnnotation) manifests.push_back({*d, ""});
  }
  for (size_t i = 0; i < manifests.size() && i < kMaxManifestsPerRecord; ++i) {
    const auto [digest, media_type] = manifests[i];
    if (!store.Has(digest)) continue;  // missing: Verify reports it
    auto bytes = store.ReadBlob(digest, manifest::kMaxManifestBytes);
    if (!bytes.ok()) {
      unreadable(digest, bytes.status());
      continue;
    }
    auto decoded = manifest::Decode(media_type, *bytes);
    if (!decoded.ok()) {
      unreadable(digest, decoded.status().WithContext("manifest " + digest.String()));
      continue;
    }
    if (decoded->kind == manifest::Kind::kIndex) {
      for (const Descriptor& child : manifest::Children(*decoded)) {
        if (!store.Has(child.digest)) continue;  // another platform's, never pulled
        refs->blobs.emplace(child.digest, name);
        manifests.push_back({child.digest, child.media_type});
      }
      continue;
    }
    for (const Descriptor& child : manifest::Children(*decoded)) {
      refs->blobs.emplace(child.digest, name);
    }
    if (decoded->kind != manifest::Kind::kImageManifest) continue;  // schema1: blobs only
    const Digest& config = decoded->manifest.config.digest;
    if (!store.Has(config)) continue;
    auto config_bytes = store.ReadBlob(config, manifest::kMaxManifestBytes);
    auto cfg = config_bytes.ok() ? manifest::ParseConfig(*config_bytes)
                                 : Result<manifest::ImageConfig>(config_bytes.status());
    if (!cfg.ok()) {
      unreadable(config, cfg.status().WithContext("config " + config.String()));
      continue;
    }
    for (const Digest& diff_id : cfg->diff_ids) refs->layers.emplace(diff_id, name);
  }
}

}  // namespace

References CollectReferences(const content::Store& store, const std::vector<Descriptor>& records) {
  References refs;
  for (const Descriptor& r : records) AddRecord(store, r, &refs);
  return refs;
}

}  // namespace hoist::image

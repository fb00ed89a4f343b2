// The local store as a source (hoist:REF: push, save, copy from it) and as a destination (load,
// copy into it), with the same verification and the same streaming as a pull.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "content/store.h"
#include "hoist/image.h"
#include "pull/fetch.h"
#include "transport/transport.h"

namespace hoist::transport {

// The image a record names: its top document is the registry's own manifest bytes as recorded
// (image::Load), the config and layers are read from blobs/. Only that one image manifest is
// held (a record keeps no other platform's), so copying it with --all copies that manifest.
class StoreSource : public ImageSource {
 public:
  // NotFound "no such image in the store (pull it first)" when `ref` has no record.
  static Result<std::unique_ptr<StoreSource>> Open(const content::Store& store,
                                                   std::string_view ref);
  Result<ManifestBytes> TopManifest() override;
  Result<ManifestBytes> Manifest(const Digest& digest) override;
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override;
  // The record's full name.
  std::vector<std::string> Names() override { return {image_.reference}; }
  const Image& image() const { return image_; }

 private:
  StoreSource(const content::Store& store, Image image) : store_(store), image_(std::move(image)) {}
  const content::Store& store_;
  Image image_;
};

// Puts images into the store: blobs through pull::BlobFetcher (verified, a layer extracted in the
// same pass, resumable, shared with concurrent pulls by its claims), manifests verified by
// content::Store::WriteBlob, and the image record last (image::Record). The caller holds the
// store's gc lock (content::Store::LockAgainstGc) for the destination's life.
class StoreDestination : public ImageDestination {
 public:
  // `options`: the layer limits and notices of a pull (what they point to must outlive the
  // destination); `progress` hears of each layer as a pull's does. `max_image_bytes` > 0: the
  // file data of the layers this destination extracts, together, is capped so (a pull's
  // ClientOptions::max_image_bytes); it replaces options.limits.image_budget.
  StoreDestination(content::Store& store, pull::FetchOptions options, ProgressCallback progress,
                   uint64_t max_image_bytes = 0);

  // True when the blob is stored and, for a layer, extracted (unpack::LayerExists).
  Result<bool> Reuse(const BlobInfo& b) override;
  Status PutBlob(const BlobInfo& b, ImageSource& src) override;
  Status PutManifest(const ManifestBytes& m) override;
  // Syncs the layers put or reused so far (unpack::SyncLayers), then records the image under
  // names.front(), a reference (InvalidArgument when there is none or
  // it does not parse). An index is recorded by its manifest for the host's platform, which
  // must have been copied (with the index's digest as the record's repo digest).
  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override;

  // The images committed so far.
  const std::vector<Image>& committed() const { return committed_; }

 private:
  content::Store& store_;
  std::unique_ptr<unpack::ImageBudget> budget_;
  pull::FetchOptions options_;
  const ProgressCallback callback_;
  pull::Progress progress_;  // reports to callback_
  std::vector<Image> committed_;
  std::mutex mu_;
  std::vector<Digest> layers_;  // the diff_ids put or reused, for one sync in Commit; under mu_
};

}  // namespace hoist::transport

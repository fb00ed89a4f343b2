// A test double of the transport tests: a destination that keeps in memory what a copy puts.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "transport/transport.h"

namespace hoist::transport {

// Collects what a copy puts: each blob's bytes (by digest), and the names of the commit.
class CollectingDestination : public ImageDestination {
 public:
  Result<bool> Reuse(const BlobInfo&) override { return false; }
  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    std::string bytes;
    RETURN_IF_ERROR(src.Blob(b.blob, registry::BlobSink{[&] {
                                                          bytes.clear();
                                                          return OkStatus();
                                                        },
                                                        [&](const char* d, size_t n) {
                                                          bytes.append(d, n);
                                                          return OkStatus();
                                                        },
                                                        0}));
    std::lock_guard<std::mutex> lock(mu_);
    blobs[b.blob.digest.String()] = std::move(bytes);
    return OkStatus();
  }
  Status PutManifest(const ManifestBytes&) override { return OkStatus(); }
  Status Commit(const ManifestBytes&, const std::vector<std::string>& n) override {
    std::lock_guard<std::mutex> lock(mu_);
    names = n;
    return OkStatus();
  }

  std::mutex mu_;
  std::map<std::string, std::string> blobs;
  std::vector<std::string> names;
};

}  // namespace hoist::transport

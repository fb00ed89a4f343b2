#include "content/layout.h"

#include <utility>

namespace hoist::content {

Layout::Layout(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string Layout::OciLayoutFile() const { return Join("oci-layout"); }
std::string Layout::OciLayoutTempFile() const { return Join("oci-layout.tmp"); }
std::string Layout::IndexFile() const { return Join("index.json"); }
std::string Layout::IndexTempFile() const { return Join("index.json.tmp"); }

std::string Layout::BlobsDir() const { return Join("blobs"); }
std::string Layout::BlobAlgorithmDir(const std::string& algorithm) const {
  return Join("blobs/" + algorithm);
}
std::string Layout::BlobFile(const Digest& d) const {
  return Join("blobs/" + d.algorithm() + "/" + d.hex());
}

std::string Layout::KeyOf(const Digest& d) { return d.algorithm() + "-" + d.hex(); }

std::optional<Digest> Layout::DigestOfKey(std::string_view key) {
  const size_t dash = key.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto d =
      Digest::Parse(std::string(key.substr(0, dash)) + ":" + std::string(key.substr(dash + 1)));
  return d.ok() ? std::optional<Digest>(*d) : std::nullopt;
}

std::string Layout::IngestDir() const { return Join("ingest"); }
std::string Layout::IngestEntryDir(const Digest& d) const { return Join("ingest/" + KeyOf(d)); }
std::string Layout::IngestDataFile(const Digest& d) const { return IngestEntryDir(d) + "/data"; }

std::string Layout::LayersDir() const { return Join("layers"); }
std::string Layout::LayerDir(const Digest& diff_id) const {
  return Join("layers/" + diff_id.algorithm() + "/" + diff_id.hex());
}

std::string Layout::LayerAlgorithmDir(const std::string& algorithm) const {
  return Join("layers/" + algorithm);
}
std::string Layout::LayerRootfs(const Digest& diff_id) const {
  return LayerDir(diff_id) + "/rootfs";
}
std::string Layout::LayerInfoFile(const Digest& diff_id) const {
  return LayerDir(diff_id) + "/layer.json";
}
std::string Layout::LayersStagingDir() const { return Join("layers/staging"); }
std::string Layout::LayerStagingDir(const Digest& diff_id) const {
  return LayersStagingDir() + "/" + KeyOf(diff_id);
}

std::string Layout::EmptyLayerDir() const { return Join("layers/empty"); }
std::string Layout::MountsDir() const { return Join("mounts"); }
std::string Layout::MountDir(const std::string& id) const { return Join("mounts/" + id); }
std::string Layout::MountRecordFile(const std::string& id) const {
  return MountDir(id) + "/mount.json";
}

std::string Layout::Relative(const std::string& path) const {
  const std::string prefix = root_ == "/" ? root_ : root_ + "/";
  return path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : path;
}

std::string Layout::LocksDir() const { return Join("locks"); }
std::string Layout::BlobLockFile(const Digest& d) const {
  return Join("locks/" + KeyOf(d) + ".lock");
}
std::string Layout::IndexLockFile() const { return Join("locks/index.lock"); }
std::string Layout::LayerLockFile(const Digest& diff_id) const {
  return Join("locks/layer-" + KeyOf(diff_id) + ".lock");
}
std::string Layout::GcLockFile() const { return Join("locks/gc.lock"); }

}  // namespace hoist::content

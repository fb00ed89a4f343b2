// hoist::Client's root-filesystem commands: unpack (a flattened rootfs or an
// OCI bundle) and overlay mounts of the store's layer directories.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "client_impl.h"
#include "content/digester.h"
#include "manifest/config.h"
#include "unpack/bundle.h"
#include "unpack/layer.h"
#include "unpack/mount.h"

namespace hoist {

// Applies every layer of the image, in order, to root_fd (a flattened rootfs),
// each one checked against its diff_id again.
Status Client::Impl::ApplyLayers(const Image& image, int root_fd) {
  std::vector<Digest> diff_ids;
  if (!image.config_json.empty()) {
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(image.config_json));
    diff_ids = cfg.diff_ids;
  }
  unpack::ExtractOptions extract;
  extract.whiteouts = unpack::WhiteoutMode::kApply;
  unpack::LayerLimits limits;
  limits.max_uncompressed = options.max_layer_bytes;
  extract.max_total_bytes = limits.max_uncompressed;
  unpack::ImageBudget budget(options.max_image_bytes);
  extract.image_budget = &budget;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& layer = image.layers[i];
    const std::string context = "layer " + layer.digest.String();
    unpack::LayerStream stream(root_fd, layer.media_type, extract, limits);
    RETURN_IF_ERROR(
        unpack::FeedFile(store->layout().BlobFile(layer.digest), [&](const char* d, size_t n) {
          return stream.Feed(d, n);
        }).WithContext(context));
    auto diff_id = stream.Finish();
    if (!diff_id.ok()) return diff_id.status().WithContext(context);
    if (i < diff_ids.size() && *diff_id != diff_ids[i]) {
      return DataLossError(context + ": diff_id mismatch: got " + diff_id->String() + ", want " +
                           diff_ids[i].String());
    }
  }
  return OkStatus();
}

namespace {

// A fresh staging directory beside `dest` ("DIR/.NAME.hoist-XXXXXX").
Result<std::string> MakeStagingBeside(const std::string& dest) {
  std::filesystem::path p(dest);
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return InvalidArgumentError("destination \"" + dest + "\" must name a directory");
  }
  std::string tmpl = (p.parent_path().empty() ? std::filesystem::path(".") : p.parent_path()) /
                     ("." + name + ".hoist-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return ErrnoError(errno, "create staging beside " + dest);
  ::chmod(buf.data(), 0755);
  return std::string(buf.data());
}

// OK if `dest` does not exist or is an empty directory.
Status CheckDestination(const std::string& dest) {
  std::error_code ec;
  auto st = std::filesystem::symlink_status(dest, ec);
  if (ec || st.type() == std::filesystem::file_type::not_found) return OkStatus();
  if (st.type() != std::filesystem::file_type::directory) {
    return AlreadyExistsError(dest + " exists and is not a directory");
  }
  if (!std::filesystem::is_empty(dest, ec) || ec) {
    return AlreadyExistsError(dest + " is not empty");
  }
  return OkStatus();
}

// The store's directory for the upper/work dirs of a writable mount at
// `target`.
Result<std::string> MountId(const std::string& target) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(target, ec);
  if (ec) return InvalidArgumentError("mount target " + target + ": " + ec.message());
  ASSIGN_OR_RETURN(Digest d, content::DigestOf("sha256", abs.string()));
  return d.hex().substr(0, 32);
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

}  // namespace

Status Client::Unpack(std::string_view text, const std::string& dest,
                      const UnpackOptions& options) {
  const std::string context = "unpack " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = impl_->Find(*ref);
  if (!image.ok()) return image.status().WithContext(context);
  RETURN_IF_ERROR(CheckDestination(dest).WithContext(context));
  auto staging = MakeStagingBeside(dest);
  if (!staging.ok()) return staging.status().WithContext(context);
  auto build = [&]() -> Status {
    std::string rootfs = options.bundle ? *staging + "/rootfs" : *staging;
    if (options.bundle && ::mkdir(rootfs.c_str(), 0755) != 0) {
      return ErrnoError(errno, "mkdir " + rootfs);
    }
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root) return ErrnoError(errno, "open " + rootfs);
    RETURN_IF_ERROR(impl_->ApplyLayers(*image, root.get()));
    if (options.bundle) {
      ASSIGN_OR_RETURN(std::string config, unpack::RuntimeConfig(image->config_json, root.get()));
      RETURN_IF_ERROR(WriteFileAtomically(FileSystem::Default(), *staging + "/config.json",
                                          *staging + "/config.json.tmp", config, 0644));
    }
    if (::rename(staging->c_str(), dest.c_str()) != 0) {
      return ErrnoError(errno, "rename into " + dest);
    }
    return OkStatus();
  };
  Status s = build();
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(*staging, ec);
    return s.WithContext(context);
  }
  return OkStatus();
}

Status Client::Mount(std::string_view text, const std::string& target,
                     const MountOptions& options) {
  const std::string context = "mount " + std::string(text);
  if (geteuid() != 0) return FailedPreconditionError(context + ": mounting an overlay needs root");
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = impl_->Find(*ref);
  if (!image.ok()) return image.status().WithContext(context);
  if (image->config_json.empty()) {
    return FailedPreconditionError(context + ": schema1 images are not extracted per layer");
  }
  auto cfg = manifest::ParseConfig(image->config_json);
  if (!cfg.ok()) return cfg.status().WithContext(context);
  const content::Layout& layout = impl_->store->layout();
  std::vector<std::string> lowerdirs;  // topmost first
  for (auto it = cfg->diff_ids.rbegin(); it != cfg->diff_ids.rend(); ++it) {
    auto info = ReadFileToString(layout.LayerInfoFile(*it), 1 << 20);
    if (!info.ok()) {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " is not extracted (pull the image again)");
    }
    auto j = ParseJson(*info, layout.LayerInfoFile(*it));
    if (!j.ok() || !j->is_object() || j->value("whiteouts", "") != "overlay") {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " was extracted without root (OCI whiteout files); pull it "
                                     "again as root to mount it");
    }
    if (j->contains("lowerHardlinks")) {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " hardlinks files of lower layers, which separate overlay "
                                     "layers cannot share; use hoist unpack");
    }
    lowerdirs.push_back(Absolute(layout.LayerRootfs(*it)));
  }
  if (lowerdirs.size() < 2) {
    // overlayfs wants two lower layers when there is no upper one.
    RETURN_IF_ERROR(
        MakeDirs(FileSystem::Default(), layout.EmptyLayerDir(), 0755).WithContext(context));
    lowerdirs.push_back(Absolute(layout.EmptyLayerDir()));
  }
  std::string upper, work;
  if (options.writable) {
    auto id = MountId(target);
    if (!id.ok()) return id.status().WithContext(context);
    std::string dir = Absolute(layout.MountDir(*id));
    upper = dir + "/upper";
    work = dir + "/work";
    for (const auto& d : {upper, work}) {
      RETURN_IF_ERROR(MakeDirs(FileSystem::Default(), d, 0755).WithContext(context));
    }
  }
  return unpack::MountOverlay(lowerdirs, upper, work, target).WithContext(context);
}

Status Client::Unmount(const std::string& target) {
  const std::string context = "umount " + target;
  auto id = MountId(target);
  if (!id.ok()) return id.status().WithContext(context);
  RETURN_IF_ERROR(unpack::Unmount(target).WithContext(context));
  std::error_code ec;
  std::filesystem::remove_all(impl_->store->layout().MountDir(*id), ec);
  return OkStatus();
}

}  // namespace hoist

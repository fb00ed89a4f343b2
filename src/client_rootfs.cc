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
#include "image/records.h"
#include "manifest/config.h"
#include "unpack/bundle.h"
#include "unpack/destination.h"
#include "unpack/layer.h"
#include "unpack/merge.h"
#include "unpack/mount.h"

namespace hoist {

namespace {

// The flattened rootfs from the store's layer directories (unpack/merge.h), when they can serve
// for every layer: each committed (its record checks out) in the whiteout format this process
// would use, with no hardlinks into lower layers, and within the caps (the file data of each
// layer and of the image, as recorded at the pull). Returns false, with nothing written, where
// they cannot; the caller then applies the blobs. The layer directories cannot change meanwhile:
// gc is held off by the caller, and a pull replaces only layers whose record does not serve.
Result<bool> MergeStoredLayers(const content::Store& store, const ClientOptions& options,
                               const manifest::ImageConfig& cfg, size_t layers, int root_fd) {
  if (cfg.diff_ids.size() != layers || layers == 0) return false;
  std::vector<UniqueFd> fds;
  std::vector<unpack::LayerTree> trees;
  uint64_t image_bytes = 0;
  for (const Digest& diff_id : cfg.diff_ids) {
    auto record = unpack::ReadLayerRecord(store, diff_id);
    if (!record.ok() || record->lower_hardlinks ||
        (record->whiteouts != unpack::WhiteoutMode::kOverlay &&
         unpack::StoreWhiteoutMode() == unpack::WhiteoutMode::kOverlay) ||
        record->size > options.max_layer_bytes) {
      return false;
    }
    image_bytes += record->size;
    if (image_bytes > options.max_image_bytes) return false;
    ASSIGN_OR_RETURN(UniqueFd dir, store.OpenDir(store.layout().LayerDir(diff_id), false));
    UniqueFd rootfs(::openat(dir.get(), "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!rootfs) return false;
    trees.push_back({rootfs.get(), record->whiteouts, unpack::BirthTime(rootfs.get())});
    fds.push_back(std::move(rootfs));
  }
  unpack::MergeOptions merge;
  merge.fs = store.fs();
  Status s = unpack::MergeLayerTrees(trees, root_fd, merge);
  if (s.code() == StatusCode::kFailedPrecondition) return false;  // nothing written yet
  RETURN_IF_ERROR(s);
  return true;
}

}  // namespace

// Builds the flattened rootfs in root_fd: from the store's layer directories where they serve,
// else by applying every layer blob, in order, each one checked against its diff_id again.
Status Client::Impl::ApplyLayers(const Image& image, int root_fd, bool from_blobs) {
  std::vector<Digest> diff_ids;
  if (!image.config_json.empty()) {
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(image.config_json));
    if (!from_blobs) {
      ASSIGN_OR_RETURN(bool merged,
                       MergeStoredLayers(*store, options, cfg, image.layers.size(), root_fd));
      if (merged) return OkStatus();
    }
    diff_ids = cfg.diff_ids;
  }
  unpack::ExtractOptions extract;
  extract.whiteouts = unpack::WhiteoutMode::kApply;
  extract.fs = store->fs();
  unpack::LayerLimits limits;
  limits.max_uncompressed = options.max_layer_bytes;
  limits.max_zstd_window = options.max_zstd_window_bytes;
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
  auto gc_guard = impl_->store->LockAgainstGc();  // gc keeps the layers it reads
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = image::Find(*impl_->store, *ref);
  if (!image.ok()) return image.status().WithContext(context);
  FileSystem* fs = impl_->store->fs();
  // The tree is built in a private staging dir beside dest and renamed into place when complete.
  Status s = unpack::BuildNewDirectory(fs, dest, [&](int out_fd) -> Status {
    if (!options.bundle) return impl_->ApplyLayers(*image, out_fd, options.from_blobs);
    RETURN_IF_ERROR(fs->MkdirAt(out_fd, "rootfs", 0755));
    ASSIGN_OR_RETURN(UniqueFd rootfs,
                     fs->OpenAt(out_fd, "rootfs", O_PATH | O_DIRECTORY | O_NOFOLLOW));
    RETURN_IF_ERROR(impl_->ApplyLayers(*image, rootfs.get(), options.from_blobs));
    ASSIGN_OR_RETURN(std::string config, unpack::RuntimeConfig(image->config_json, rootfs.get()));
    return WriteFileAtomicallyAt(fs, out_fd, "config.json", "config.json.tmp", config, 0644);
  });
  return s.WithContext(context);
}

Status Client::Mount(std::string_view text, const std::string& target,
                     const MountOptions& options) {
  const std::string context = "mount " + std::string(text);
  if (geteuid() != 0) return FailedPreconditionError(context + ": mounting an overlay needs root");
  // Held until the mount is recorded: gc keeps its layers and its half-made directory.
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  auto target_fd = unpack::OpenMountTarget(target);
  if (!target_fd.ok()) return target_fd.status().WithContext(context);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = image::Find(*impl_->store, *ref);
  if (!image.ok()) return image.status().WithContext(context);
  if (image->config_json.empty()) {
    return FailedPreconditionError(context + ": schema1 images are not extracted per layer");
  }
  auto cfg = manifest::ParseConfig(image->config_json);
  if (!cfg.ok()) return cfg.status().WithContext(context);
  const content::Store& store = *impl_->store;
  const content::Layout& layout = store.layout();
  FileSystem* fs = store.fs();
  std::vector<std::string> lowerdirs;  // topmost first
  for (auto it = cfg->diff_ids.rbegin(); it != cfg->diff_ids.rend(); ++it) {
    // Only a directory hoist committed (its record checks out) is served.
    auto record = unpack::ReadLayerRecord(store, *it);
    if (!record.ok()) {
      return FailedPreconditionError(
          context + ": layer " + it->String() +
          " is not extracted (pull the image again): " + record.status().message());
    }
    if (record->whiteouts != unpack::WhiteoutMode::kOverlay) {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " was extracted without root (OCI whiteout files); pull it "
                                     "again as root to mount it");
    }
    if (record->lower_hardlinks) {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " hardlinks files of lower layers, which separate overlay "
                                     "layers cannot share; use hoist unpack");
    }
    lowerdirs.push_back(Absolute(layout.LayerRootfs(*it)));
  }
  if (lowerdirs.empty()) return InvalidArgumentError(context + ": the image has no layers");
  if (lowerdirs.size() < 2) {
    // overlayfs wants two lower layers when there is no upper one.
    RETURN_IF_ERROR(store.OpenDir(layout.EmptyLayerDir(), true).status().WithContext(context));
    lowerdirs.push_back(Absolute(layout.EmptyLayerDir()));
  }
  auto id = MountId(target);
  if (!id.ok()) return id.status().WithContext(context);
  auto mounts = store.OpenDir(layout.MountsDir(), true);
  if (!mounts.ok()) return mounts.status().WithContext(context);
  const std::string dir_path = layout.MountDir(*id);
  {
    auto dir = store.OpenDir(dir_path, false);
    if (dir.ok()) {
      auto recorded = unpack::ReadMountRecord(dir->get(), layout.MountRecordFile(*id));
      auto now = unpack::IdentifyMount(target_fd->get());
      if (recorded.ok() && now.ok() && *recorded == *now) {
        return AlreadyExistsError(context + ": hoist has mounted " + target +
                                  " already; hoist umount it first");
      }
    }
    // A directory without a live mount is what a failed or vanished mount left: ours to clear.
    RETURN_IF_ERROR(RemoveAllAt(fs, mounts->get(), *id).WithContext(context));
  }
  auto dir = store.OpenDir(dir_path, true);  // 0700: a private parent for upper and work
  if (!dir.ok()) return dir.status().WithContext(context);
  Status s = [&]() -> Status {
    std::string upper, work;
    if (options.writable) {
      // The mount's root takes upper's owner and mode: give it the top layer's.
      struct stat top;
      if (::stat(lowerdirs.front().c_str(), &top) != 0) {
        return ErrnoError(errno, "stat " + lowerdirs.front());
      }
      ASSIGN_OR_RETURN(UniqueFd upper_fd, MakeDirAt(fs, dir->get(), "upper", 0700));
      RETURN_IF_ERROR(fs->Fchown(upper_fd.get(), top.st_uid, top.st_gid));
      RETURN_IF_ERROR(fs->Fchmod(upper_fd.get(), top.st_mode & 07777));
      RETURN_IF_ERROR(MakeDirAt(fs, dir->get(), "work", 0700).status());
      upper = Absolute(dir_path + "/upper");
      work = Absolute(dir_path + "/work");
    }
    RETURN_IF_ERROR(unpack::MountOverlay(lowerdirs, upper, work, target_fd->get(), target));
    // Record the mount, so that umount undoes this one and nothing else.
    Status recorded = [&]() -> Status {
      ASSIGN_OR_RETURN(UniqueFd mounted, unpack::OpenMountTarget(target));
      ASSIGN_OR_RETURN(unpack::MountIdentity identity, unpack::IdentifyMount(mounted.get()));
      return WriteFileAtomicallyAt(fs, dir->get(), "mount.json", "mount.json.tmp",
                                   unpack::MountRecordJson(Absolute(target), identity), 0600);
    }();
    if (!recorded.ok()) (void)unpack::Unmount(target);
    return recorded;
  }();
  if (!s.ok()) {
    (void)RemoveAllAt(fs, mounts->get(), *id);
    return s.WithContext(context);
  }
  return OkStatus();
}

Status Client::Unmount(const std::string& target) {
  const std::string context = "umount " + target;
  const content::Store& store = *impl_->store;
  const content::Layout& layout = store.layout();
  auto target_fd = unpack::OpenMountTarget(target);
  if (!target_fd.ok()) return target_fd.status().WithContext(context);
  auto id = MountId(target);
  if (!id.ok()) return id.status().WithContext(context);
  const std::string not_ours =
      ": hoist did not mount anything here (hoist umount only undoes hoist mount)";
  auto dir = store.OpenDir(layout.MountDir(*id), false);
  if (!dir.ok()) {
    if (dir.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(context + not_ours);
    }
    return dir.status().WithContext(context);
  }
  auto recorded = unpack::ReadMountRecord(dir->get(), layout.MountRecordFile(*id));
  if (!recorded.ok()) {
    if (recorded.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(context + not_ours);
    }
    return recorded.status().WithContext(context);
  }
  auto now = unpack::IdentifyMount(target_fd->get());
  if (!now.ok()) return now.status().WithContext(context);
  if (!(*now == *recorded)) {
    return FailedPreconditionError(context +
                                   ": what is mounted there now is not the mount hoist made "
                                   "(unmounted or mounted over since); leaving it alone");
  }
  target_fd->reset();  // an open fd keeps the mount busy
  RETURN_IF_ERROR(unpack::Unmount(target).WithContext(context));
  auto mounts = store.OpenDir(layout.MountsDir(), false);
  if (!mounts.ok()) return mounts.status().WithContext(context);
  return RemoveAllAt(store.fs(), mounts->get(), *id).WithContext(context);
}

}  // namespace hoist

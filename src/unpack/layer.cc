#include "unpack/layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/status_macros.h"

namespace hoist::unpack {
namespace {

constexpr size_t kReadChunk = 1 << 20;

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);  // never follows symlinks
}

}  // namespace

LayerStream::LayerStream(int root_fd, std::string_view media_type, ExtractOptions options,
                         LayerLimits limits)
    : extractor_(std::make_unique<Extractor>(root_fd, options)),
      tar_(std::make_unique<TarReader>(extractor_.get())),
      diff_digester_(std::move(content::Digester::New("sha256")).value()),
      decompressor_(std::make_unique<Decompressor>(
          [this](const char* data, size_t n) {
            diff_digester_.Update(data, n);
            return tar_->Feed(data, n);
          },
          limits.max_uncompressed, CompressionOfMediaType(media_type))) {}

LayerStream::~LayerStream() = default;

Status LayerStream::Feed(const char* data, size_t n) { return decompressor_->Feed(data, n); }

Result<Digest> LayerStream::Finish() {
  RETURN_IF_ERROR(decompressor_->Finish());
  RETURN_IF_ERROR(tar_->Finish());
  RETURN_IF_ERROR(extractor_->Finish());
  return diff_digester_.Finish();
}

Status FeedFile(const std::string& path,
                const std::function<Status(const char*, size_t)>& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoError(errno, "open " + path);
  std::unique_ptr<char[]> buf(new char[kReadChunk]);
  while (true) {
    ssize_t n = ::read(fd.get(), buf.get(), kReadChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + path);
    if (n == 0) return OkStatus();
    RETURN_IF_ERROR(sink(buf.get(), static_cast<size_t>(n)));
  }
}

WhiteoutMode StoreWhiteoutMode() {
  return geteuid() == 0 ? WhiteoutMode::kOverlay : WhiteoutMode::kOciFiles;
}

bool LayerExists(const content::Layout& layout, const Digest& diff_id) {
  auto info = ReadFileToString(layout.LayerInfoFile(diff_id), 1 << 20);
  if (!info.ok()) return false;
  auto j = ParseJson(*info, layout.LayerInfoFile(diff_id));
  if (!j.ok() || !j->is_object()) return false;
  // A layer kept in OCI .wh. format (extracted without root) is redone in overlay format by a
  // process that can write it; overlay format serves everyone.
  return j->value("whiteouts", "") == "overlay" || StoreWhiteoutMode() == WhiteoutMode::kOciFiles;
}

LayerUnpacker::LayerUnpacker(const content::Layout& layout, FileSystem* fs, Digest diff_id,
                             FileLock lock)
    : layout_(layout), fs_(fs), diff_id_(std::move(diff_id)), lock_(std::move(lock)) {}

LayerUnpacker::~LayerUnpacker() {
  stream_.reset();
  rootfs_.reset();
  if (!already_exists_ && !committed_) RemoveTree(layout_.LayerStagingDir(diff_id_));
}

Result<std::unique_ptr<LayerUnpacker>> LayerUnpacker::Open(const content::Layout& layout,
                                                           FileSystem* fs, const Digest& diff_id,
                                                           std::string_view media_type,
                                                           LayerLimits limits) {
  const std::string context = "layer " + diff_id.String();
  if (diff_id.algorithm() != "sha256") {
    return DataLossError(context + ": diff_ids are sha256");
  }
  RETURN_IF_ERROR(MakeDirs(fs, layout.LocksDir(), 0755).WithContext(context));
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(fs, layout.LayerLockFile(diff_id)));
  std::unique_ptr<LayerUnpacker> u(new LayerUnpacker(layout, fs, diff_id, std::move(lock)));
  if (LayerExists(layout, diff_id)) {
    u->already_exists_ = true;
    return u;
  }
  // Whatever a crashed extraction left is ours to clear: we hold the lock.
  const std::string staging = layout.LayerStagingDir(diff_id);
  RemoveTree(layout.LayerDir(diff_id));
  RemoveTree(staging);
  RETURN_IF_ERROR(MakeDirs(fs, staging + "/rootfs", 0755).WithContext(context));
  u->rootfs_ = UniqueFd(
      ::open((staging + "/rootfs").c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!u->rootfs_) return ErrnoError(errno, "open " + staging + "/rootfs");
  u->mode_ = StoreWhiteoutMode();
  ExtractOptions options;
  options.whiteouts = u->mode_;
  options.max_total_bytes = limits.max_uncompressed;
  options.defer_missing_hardlinks = true;  // links into lower layers: counted in layer.json
  options.image_budget = limits.image_budget;
  u->stream_ = std::make_unique<LayerStream>(u->rootfs_.get(), media_type, options, limits);
  return u;
}

Status LayerUnpacker::Feed(const char* data, size_t n) {
  if (already_exists_) return OkStatus();
  return stream_->Feed(data, n);
}

Status LayerUnpacker::Finish() {
  if (already_exists_) return OkStatus();
  ASSIGN_OR_RETURN(Digest got, stream_->Finish());
  if (got != diff_id_) {
    return DataLossError("diff_id mismatch: got " + got.String() + ", want " +
                         diff_id_.String());
  }
  size_ = stream_->extractor().bytes_written();
  finished_ = true;
  return OkStatus();
}

Status LayerUnpacker::Commit() {
  if (already_exists_) return OkStatus();
  if (!finished_) return FailedPreconditionError("layer commit before a successful finish");
  const std::string staging = layout_.LayerStagingDir(diff_id_);
  nlohmann::json info = {
      {"diffID", diff_id_.String()},
      {"whiteouts", mode_ == WhiteoutMode::kOverlay ? "overlay" : "oci"},
      {"size", size_},
  };
  // Hardlinks to files of lower layers: this directory cannot hold them, so it is not a
  // complete overlay lowerdir (hoist mount refuses it; hoist unpack applies them from the
  // blobs). Only their number is recorded, so that layer.json stays small.
  const size_t lower = stream_->extractor().lower_hardlinks().size();
  if (lower > 0) info["lowerHardlinks"] = lower;
  // The layer's files reach the disk before the rename makes them visible (one syncfs
  // instead of an fsync per file).
  UniqueFd dir(::open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir || ::syncfs(dir.get()) != 0) return ErrnoError(errno, "syncfs " + staging);
  RETURN_IF_ERROR(WriteFileAtomically(fs_, staging + "/layer.json", staging + "/layer.json.tmp",
                                      info.dump() + "\n", 0444));
  RETURN_IF_ERROR(MakeDirs(fs_, layout_.LayerAlgorithmDir(diff_id_.algorithm()), 0755));
  RETURN_IF_ERROR(fs_->Rename(staging, layout_.LayerDir(diff_id_)));
  RETURN_IF_ERROR(FsyncDir(fs_, layout_.LayerAlgorithmDir(diff_id_.algorithm())));
  committed_ = true;
  return OkStatus();
}

}  // namespace hoist::unpack

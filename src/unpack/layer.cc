#include "unpack/layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/status_macros.h"

namespace hoist::unpack {
namespace {

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kMaxRecordBytes = 1 << 20;
constexpr char kRecordName[] = "layer.json";
constexpr char kRecordTempName[] = "layer.json.tmp";
constexpr char kRootfsName[] = "rootfs";
constexpr char kPendingKey[] = "syncPendingBoot";
// The bytes between the download and the extraction of a layer: kPipeBlocks of kPipeBlock.
constexpr size_t kPipeBlock = 512 << 10;
constexpr size_t kPipeBlocks = 4;

// Writes the record into the layer directory dir_fd by a rename, without syncing (see
// layer.h: a record that is not durable is either one the next boot refuses, or an older
// record of the same layer). A leftover temporary file (read-only) is removed first.
Status WriteRecordAt(FileSystem* fs, int dir_fd, const nlohmann::json& record) {
  struct stat st;
  if (::fstatat(dir_fd, kRecordTempName, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    RETURN_IF_ERROR(fs->UnlinkAt(dir_fd, kRecordTempName, 0));
  }
  return WriteFileAtomicallyAt(fs, dir_fd, kRecordName, kRecordTempName, record.dump() + "\n", 0444,
                               Durability::kUnsynced);
}

// ReadLayerRecord, also giving the record's JSON (when `json` is set).
Result<LayerRecord> ReadRecord(const content::Store& store, const Digest& diff_id,
                               nlohmann::json* json);

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
          limits.max_uncompressed, CompressionOfMediaType(media_type), limits.max_zstd_window)) {}

LayerStream::~LayerStream() = default;

Status LayerStream::Feed(const char* data, size_t n) { return decompressor_->Feed(data, n); }

uint64_t LayerStream::entries() const { return tar_->entries(); }

Result<Digest> LayerStream::Finish() {
  RETURN_IF_ERROR(decompressor_->Finish());
  RETURN_IF_ERROR(tar_->Finish());
  RETURN_IF_ERROR(extractor_->Finish());
  return diff_digester_.Finish();
}

Status FeedFile(const std::string& path, const std::function<Status(const char*, size_t)>& sink) {
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

Result<LayerRecord> ReadLayerRecord(const content::Store& store, const Digest& diff_id) {
  return ReadRecord(store, diff_id, nullptr);
}

namespace {

Result<LayerRecord> ReadRecord(const content::Store& store, const Digest& diff_id,
                               nlohmann::json* json) {
  const content::Layout& layout = store.layout();
  const std::string dir_path = layout.LayerDir(diff_id);
  const std::string record_path = layout.LayerInfoFile(diff_id);
  ASSIGN_OR_RETURN(UniqueFd dir, store.OpenDir(dir_path, /*create=*/false));
  auto not_ours = [&](const std::string& why) {
    return FailedPreconditionError(dir_path + ": not a layer hoist committed (" + why + ")");
  };
  int raw = ::openat(dir.get(), kRecordName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return not_ours(std::string("no record: ") + std::strerror(errno));
  UniqueFd record(raw);
  struct stat st;
  if (::fstat(record.get(), &st) != 0) return ErrnoError(errno, "stat " + record_path);
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 0222 & ~S_IWUSR) != 0) {
    return not_ours("record not a private file of this user");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxRecordBytes) return not_ours("record too large");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  ssize_t got = ::pread(record.get(), text.data(), text.size(), 0);
  if (got != static_cast<ssize_t>(text.size())) return not_ours("record unreadable");
  auto parsed = ParseJson(text, record_path);
  if (!parsed.ok() || !parsed->is_object()) return not_ours("record not a JSON object");
  const nlohmann::json& j = *parsed;
  auto field = [&](const char* key) -> const nlohmann::json* {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  };
  const auto *id = field("diffID"), *blob = field("blob"), *files = field("files"),
             *size = field("size"), *whiteouts = field("whiteouts"), *inode = field("rootfsInode");
  if (!id || !id->is_string() || id->get<std::string>() != diff_id.String()) {
    return not_ours("record names another diff_id");
  }
  if (!blob || !blob->is_string() || !files || !files->is_number_unsigned() || !size ||
      !size->is_number_unsigned() || !whiteouts || !whiteouts->is_string() || !inode ||
      !inode->is_number_unsigned()) {
    return not_ours("record incomplete");
  }
  LayerRecord r;
  r.diff_id = diff_id;
  auto blob_digest = Digest::Parse(blob->get<std::string>());
  if (!blob_digest.ok()) return not_ours("record names no valid blob");
  r.blob = *blob_digest;
  r.files = files->get<uint64_t>();
  r.size = size->get<uint64_t>();
  const std::string format = whiteouts->get<std::string>();
  if (format != "overlay" && format != "oci") return not_ours("record names no whiteout format");
  r.whiteouts = format == "overlay" ? WhiteoutMode::kOverlay : WhiteoutMode::kOciFiles;
  r.lower_hardlinks = j.contains("lowerHardlinks");
  // Not synced yet: its files may have lost bytes in any boot but the one that wrote them.
  if (const auto* boot = field(kPendingKey)) {
    const std::string now = store.fs()->BootId();
    if (!boot->is_string() || now.empty() || boot->get<std::string>() != now) {
      return not_ours("committed in another boot and never synced");
    }
    r.synced = false;
  }
  // rootfs/ must be the directory the commit recorded, not one put in its place.
  r.rootfs_inode = inode->get<uint64_t>();
  if (::fstatat(dir.get(), kRootfsName, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
      st.st_ino != r.rootfs_inode) {
    return not_ours("rootfs is not the committed directory");
  }
  if (json != nullptr) *json = j;
  return r;
}

}  // namespace

Status SyncLayers(const content::Store& store, const std::vector<Digest>& diff_ids) {
  const content::Layout& layout = store.layout();
  FileSystem* fs = store.fs();
  // Which layers wait for a sync, read before it: a layer committed after the sync began is
  // not covered by it.
  std::vector<LayerRecord> pending;
  for (const Digest& id : diff_ids) {
    auto r = ReadLayerRecord(store, id);
    if (!r.ok() || r->synced) continue;
    if (std::none_of(pending.begin(), pending.end(),
                     [&](const LayerRecord& p) { return p.diff_id == id; })) {
      pending.push_back(*r);
    }
  }
  if (pending.empty()) return OkStatus();
  ASSIGN_OR_RETURN(UniqueFd layers, store.OpenDir(layout.LayerAlgorithmDir("sha256"), false));
  RETURN_IF_ERROR(fs->Syncfs(layers.get()).WithContext(layout.LayersDir()));
  ASSIGN_OR_RETURN(UniqueFd locks, store.OpenDir(layout.LocksDir(), true));
  for (const LayerRecord& p : pending) {
    const std::string context = "layer " + p.diff_id.String();
    auto lock = FileLock::TryAcquire(fs, locks.get(), BaseName(layout.LayerLockFile(p.diff_id)));
    if (!lock.ok()) return lock.status().WithContext(context);
    if (!lock->held()) continue;  // its holder syncs it
    nlohmann::json j;
    auto r = ReadRecord(store, p.diff_id, &j);
    // Still the very directory that was committed before the sync, and still waiting.
    if (!r.ok() || r->synced || r->rootfs_inode != p.rootfs_inode) continue;
    j.erase(kPendingKey);
    const std::string dir_path = layout.LayerDir(p.diff_id);
    ASSIGN_OR_RETURN(UniqueFd dir, store.OpenDir(dir_path, false));
    RETURN_IF_ERROR(WriteRecordAt(fs, dir.get(), j).WithContext(dir_path));
  }
  return OkStatus();
}

bool LayerExists(const content::Store& store, const Digest& diff_id) {
  auto record = ReadLayerRecord(store, diff_id);
  if (!record.ok()) return false;
  // A layer kept in OCI .wh. format (extracted without root) is redone in overlay format by a
  // process that can write it; overlay format serves everyone.
  return record->whiteouts == WhiteoutMode::kOverlay ||
         StoreWhiteoutMode() == WhiteoutMode::kOciFiles;
}

LayerUnpacker::LayerUnpacker(const content::Store& store, Digest diff_id, Digest blob,
                             FileLock lock)
    : store_(store),
      fs_(store.fs()),
      diff_id_(std::move(diff_id)),
      blob_(std::move(blob)),
      lock_(std::move(lock)) {}

LayerUnpacker::~LayerUnpacker() {
  pipe_.reset();  // the extraction stops before anything it uses goes
  // Files that are thrown away no longer count against the image's cap.
  if (stream_ != nullptr && !committed_) stream_->extractor().ReturnImageBudget();
  stream_.reset();
  rootfs_.reset();
  if (!already_exists_ && !committed_ && staging_parent_) {
    (void)RemoveAllAt(fs_, staging_parent_.get(),
                      BaseName(store_.layout().LayerStagingDir(diff_id_)));
  }
}

Result<std::unique_ptr<LayerUnpacker>> LayerUnpacker::Open(
    const content::Store& store, const Digest& diff_id, const Digest& blob,
    std::string_view media_type, LayerLimits limits, const std::function<void()>& on_wait) {
  const std::string context = "layer " + diff_id.String();
  if (diff_id.algorithm() != "sha256") {
    return DataLossError(context + ": diff_ids are sha256");
  }
  const content::Layout& layout = store.layout();
  FileSystem* fs = store.fs();
  auto locks = store.OpenDir(layout.LocksDir(), true);
  if (!locks.ok()) return locks.status().WithContext(context);
  auto lock = FileLock::Acquire(fs, locks->get(), BaseName(layout.LayerLockFile(diff_id)), on_wait);
  if (!lock.ok()) return lock.status().WithContext(context);
  std::unique_ptr<LayerUnpacker> u(new LayerUnpacker(store, diff_id, blob, std::move(*lock)));
  if (LayerExists(store, diff_id)) {
    u->already_exists_ = true;
    return u;
  }
  Status s = [&]() -> Status {
    // Whatever a crashed extraction left (or a directory that is not a layer) is ours to
    // clear: we hold the lock.
    ASSIGN_OR_RETURN(UniqueFd layers, store.OpenDir(layout.LayerAlgorithmDir("sha256"), true));
    RETURN_IF_ERROR(RemoveAllAt(fs, layers.get(), diff_id.hex()));
    const std::string staging = layout.LayerStagingDir(diff_id);
    ASSIGN_OR_RETURN(u->staging_parent_, store.OpenDir(DirName(staging), true));
    RETURN_IF_ERROR(RemoveAllAt(fs, u->staging_parent_.get(), BaseName(staging)));
    ASSIGN_OR_RETURN(UniqueFd dir,
                     MakeDirAt(fs, u->staging_parent_.get(), BaseName(staging), 0700));
    // The layer's own root directory: its mode comes from the image (or stays 0755).
    ASSIGN_OR_RETURN(UniqueFd rootfs, MakeDirAt(fs, dir.get(), kRootfsName, 0755));
    u->rootfs_ = std::move(rootfs);
    return OkStatus();
  }();
  if (!s.ok()) return s.WithContext(context);
  u->mode_ = StoreWhiteoutMode();
  ExtractOptions options;
  options.whiteouts = u->mode_;
  options.fs = fs;  // the extraction's changes go through the store's FileSystem too
  options.max_total_bytes = limits.max_uncompressed;
  options.defer_missing_hardlinks = true;  // links into lower layers: counted in layer.json
  options.image_budget = limits.image_budget;
  u->stream_ = std::make_unique<LayerStream>(u->rootfs_.get(), media_type, options, limits);
  LayerUnpacker* raw = u.get();
  u->pipe_ = std::make_unique<BytePipe>(
      [raw](const char* data, size_t n) {
        return raw->WhereDiskIsFull(raw->stream_->Feed(data, n));
      },
      kPipeBlock, kPipeBlocks);
  return u;
}

Status LayerUnpacker::WhereDiskIsFull(Status s) const {
  if (s.code() != StatusCode::kResourceExhausted) return s;
  const std::string& m = s.message();
  if (m.find("space left on device") == std::string::npos &&
      m.find("quota exceeded") == std::string::npos) {
    return s;  // a cap, not the disk
  }
  return Status(s.code(), m + " (in " + store_.layout().LayerStagingDir(diff_id_) + ")");
}

Status LayerUnpacker::Feed(const char* data, size_t n) {
  if (already_exists_) return OkStatus();
  return pipe_->Write(data, n);
}

Status LayerUnpacker::Finish() {
  if (already_exists_) return OkStatus();
  RETURN_IF_ERROR(pipe_->Close());
  auto finished = stream_->Finish();
  if (!finished.ok()) return WhereDiskIsFull(finished.status());
  Digest got = *finished;
  if (got != diff_id_) {
    return DataLossError("diff_id mismatch: got " + got.String() + ", want " + diff_id_.String());
  }
  size_ = stream_->extractor().bytes_written();
  finished_ = true;
  return OkStatus();
}

Status LayerUnpacker::Commit() {
  if (already_exists_) return OkStatus();
  if (!finished_) return FailedPreconditionError("layer commit before a successful finish");
  const content::Layout& layout = store_.layout();
  const std::string staging = layout.LayerStagingDir(diff_id_);
  struct stat st;
  if (::fstat(rootfs_.get(), &st) != 0) return ErrnoError(errno, "stat " + staging + "/rootfs");
  nlohmann::json info = {
      {"diffID", diff_id_.String()},
      {"blob", blob_.String()},
      {"files", stream_->entries()},
      {"size", size_},
      {"whiteouts", mode_ == WhiteoutMode::kOverlay ? "overlay" : "oci"},
      {"rootfsInode", static_cast<uint64_t>(st.st_ino)},
  };
  // Hardlinks to files of lower layers: this directory cannot hold them, so it is not a
  // complete overlay lowerdir (hoist mount refuses it; hoist unpack applies them from the
  // blobs). Only their number is recorded, so that layer.json stays small.
  const size_t lower = stream_->extractor().lower_hardlinks().size();
  if (lower > 0) info["lowerHardlinks"] = lower;
  const std::string boot = fs_->BootId();
  if (!boot.empty()) info[kPendingKey] = boot;
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(UniqueFd dir, fs_->OpenAt(staging_parent_.get(), BaseName(staging),
                                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    // Without a boot to name, the layer's files reach the disk before the rename makes them
    // visible (one syncfs instead of an fsync per file).
    if (boot.empty()) RETURN_IF_ERROR(fs_->Syncfs(dir.get()));
    RETURN_IF_ERROR(WriteRecordAt(fs_, dir.get(), info));
    ASSIGN_OR_RETURN(UniqueFd layers,
                     store_.OpenDir(layout.LayerAlgorithmDir(diff_id_.algorithm()), true));
    RETURN_IF_ERROR(
        fs_->RenameAt(staging_parent_.get(), BaseName(staging), layers.get(), diff_id_.hex()));
    committed_ = true;  // visible now; the directory is complete
    return boot.empty() ? fs_->Fsync(layers.get()) : OkStatus();
  }();
  return s.WithContext(staging);
}

}  // namespace hoist::unpack

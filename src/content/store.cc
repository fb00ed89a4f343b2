#include "content/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "content/index_file.h"

namespace hoist::content {
namespace {

using nlohmann::json;

constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0600;
constexpr mode_t kBlobMode = 0444;
// index.json and oci-layout are small; a bigger one is not ours.
constexpr size_t kMaxIndexBytes = 64 << 20;
constexpr size_t kMaxOciLayoutBytes = 64 << 10;

bool ExistsAt(int dir_fd, const std::string& name) {
  struct stat st;
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<json> ReadIndex(const Layout& layout) {
  auto text = ReadFileToString(layout.IndexFile(), kMaxIndexBytes);
  if (!text.ok()) return text.status();
  auto index = ParseIndex(*text);
  if (!index.ok()) return index.status().WithContext(layout.IndexFile());
  return index;
}

Status CheckOciLayout(const Layout& layout) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(layout.OciLayoutFile(), kMaxOciLayoutBytes));
  ASSIGN_OR_RETURN(json j, ParseJson(text, layout.OciLayoutFile()));
  if (!j.is_object()) return DataLossError(layout.OciLayoutFile() + ": not a JSON object");
  auto version = j.find("imageLayoutVersion");
  if (version == j.end() || !version->is_string()) {
    return DataLossError(layout.OciLayoutFile() + ": no imageLayoutVersion");
  }
  // Versions 1.x share the layout this store writes.
  if (version->get<std::string>().rfind("1.", 0) != 0) {
    return FailedPreconditionError(layout.OciLayoutFile() + ": unsupported imageLayoutVersion " +
                                   Quote(version->get<std::string>()));
  }
  return OkStatus();
}

// The ref name of an index entry, or "" when it has none.
std::string RefNameOf(const json& entry) {
  if (!entry.is_object()) return "";
  auto annotations = entry.find("annotations");
  if (annotations == entry.end() || !annotations->is_object()) return "";
  auto name = annotations->find(kRefNameAnnotation);
  if (name == annotations->end() || !name->is_string()) return "";
  return name->get<std::string>();
}

}  // namespace

// ---- Store ----

Status CheckPrivateDir(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(path + ": not a directory");
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return FailedPreconditionError(
        path + ": owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
        std::to_string(me) +
        "); a store must be its user's alone: remove it, or use a --store of your own");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPreconditionError(path + ": writable by group or others (mode " + mode +
                                   "), so its entries cannot be trusted; if nobody else wrote "
                                   "into it, run `chmod go-w " +
                                   path + "`, else remove the store");
  }
  return OkStatus();
}

Result<std::unique_ptr<Store>> Store::Open(std::string root, FileSystem* fs) {
  if (root.empty()) return InvalidArgumentError("store: empty path");
  std::unique_ptr<Store> store(new Store(Layout(std::move(root)), fs));
  RETURN_IF_ERROR(store->Initialize().WithContext("open store " + store->layout_.root()));
  return store;
}

Status Store::OpenRoot() {
  const std::string& root = layout_.root();
  const std::string parent = DirName(root);
  if (parent != root && parent != "." && parent != "/") {
    RETURN_IF_ERROR(MakeDirs(fs_, parent, 0755));
  }
  Status made = fs_->MkdirAt(AT_FDCWD, root, kDirMode);
  if (!made.ok() && made.code() != StatusCode::kAlreadyExists) return made;
  if (made.ok()) RETURN_IF_ERROR(FsyncDir(fs_, parent));
  auto fd = fs_->OpenAt(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd.ok()) {
    struct stat st;
    if (::lstat(root.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return FailedPreconditionError(root + ": not a directory (a symlink is not followed)");
    }
    return fd.status();
  }
  RETURN_IF_ERROR(CheckPrivateDir(fd->get(), root));
  // Ours and not writable by others, but perhaps readable (an older, 0755 store): close it.
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoError(errno, "stat " + root);
  if ((st.st_mode & 077) != 0) RETURN_IF_ERROR(fs_->Fchmod(fd->get(), kDirMode).WithContext(root));
  root_ = std::move(*fd);
  return OkStatus();
}

Result<UniqueFd> Store::OpenDir(const std::string& path, bool create) const {
  const std::string rel = layout_.Relative(path);
  if (rel.empty() || rel == path || rel.front() == '/') {
    return InvalidArgumentError(path + ": not a directory of the store");
  }
  UniqueFd cur(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
  if (!cur) return ErrnoError(errno, "dup");
  std::string walked = layout_.root();
  size_t start = 0;
  while (start < rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string::npos) slash = rel.size();
    const std::string name = rel.substr(start, slash - start);
    start = slash + 1;
    if (name.empty() || name == "." || name == "..") {
      return InvalidArgumentError(path + ": not a directory of the store");
    }
    walked += "/" + name;
    Result<UniqueFd> next = create
                                ? MakeDirAt(fs_, cur.get(), name, kDirMode)
                                : fs_->OpenAt(cur.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!next.ok()) return next.status().WithContext(walked);
    RETURN_IF_ERROR(CheckPrivateDir(next->get(), walked));
    cur = std::move(*next);
  }
  return cur;
}

Status Store::Initialize() {
  RETURN_IF_ERROR(OpenRoot());
  ASSIGN_OR_RETURN(UniqueFd locks, OpenDir(layout_.LocksDir(), true));
  // One process at a time creates the files, so nobody sees them half-written or writes
  // the temporary files at the same time as another.
  ASSIGN_OR_RETURN(FileLock lock,
                   FileLock::Acquire(fs_, locks.get(), BaseName(layout_.IndexLockFile())));
  RETURN_IF_ERROR(OpenDir(layout_.BlobAlgorithmDir("sha256"), true).status());
  RETURN_IF_ERROR(OpenDir(layout_.IngestDir(), true).status());
  const int root = root_.get();
  const std::string oci_layout = BaseName(layout_.OciLayoutFile());
  const std::string index = BaseName(layout_.IndexFile());
  if (ExistsAt(root, oci_layout)) {
    RETURN_IF_ERROR(CheckOciLayout(layout_));
  } else {
    RETURN_IF_ERROR(WriteFileAtomicallyAt(
        fs_, root, oci_layout, BaseName(layout_.OciLayoutTempFile()), kOciLayoutJson, kFileMode));
  }
  if (ExistsAt(root, index)) {
    RETURN_IF_ERROR(ReadIndex(layout_).status());
  } else {
    RETURN_IF_ERROR(WriteFileAtomicallyAt(fs_, root, index, BaseName(layout_.IndexTempFile()),
                                          EmptyIndexJson(), kFileMode));
  }
  return OkStatus();
}

bool Store::Has(const Digest& d, int64_t size) const {
  auto actual = BlobSize(d);
  return actual.ok() && (size < 0 || *actual == size);
}

Result<int64_t> Store::BlobSize(const Digest& d) const {
  struct stat st;
  std::string path = layout_.BlobFile(d);
  if (::lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "blob " + d.String());
  if (!S_ISREG(st.st_mode)) return FailedPreconditionError(path + ": not a regular file");
  return static_cast<int64_t>(st.st_size);
}

Result<std::string> Store::ReadBlob(const Digest& d, size_t max_bytes) const {
  auto bytes = ReadFileToString(layout_.BlobFile(d), max_bytes);
  if (!bytes.ok()) return bytes.status().WithContext("blob " + d.String());
  ASSIGN_OR_RETURN(Digest got, DigestOf(d.algorithm(), *bytes));
  if (got != d) {
    return DataLossError("blob " + d.String() + ": damaged on disk: digest is " + got.String());
  }
  return bytes;
}

Result<std::unique_ptr<Writer>> Store::OpenWriter(const Digest& d, int64_t expected_size,
                                                  const WriterOptions& options) {
  // Errors do not repeat the digest: the caller names the blob it writes.
  const std::string context = "store";
  auto check_committed = [&]() -> Result<bool> {
    auto size = BlobSize(d);
    if (!size.ok()) return false;
    if (expected_size >= 0 && *size != expected_size) {
      return DataLossError(context + ": size mismatch: committed blob has " +
                           std::to_string(*size) + " bytes, want " + std::to_string(expected_size));
    }
    return true;
  };
  auto digester = Digester::New(d.algorithm());
  if (!digester.ok()) return digester.status().WithContext(context);
  ASSIGN_OR_RETURN(bool committed, check_committed());
  if (committed) {  // fast path: no lock needed to learn there is nothing to do
    return std::unique_ptr<Writer>(new Writer(layout_, fs_, d, expected_size, FileLock(),
                                              Writer::Dirs(), UniqueFd(), std::move(*digester),
                                              true));
  }
  Result<std::unique_ptr<Writer>> writer = [&]() -> Result<std::unique_ptr<Writer>> {
    ASSIGN_OR_RETURN(UniqueFd locks, OpenDir(layout_.LocksDir(), true));
    ASSIGN_OR_RETURN(
        FileLock lock,
        FileLock::Acquire(fs_, locks.get(), BaseName(layout_.BlobLockFile(d)), options.on_wait));
    Writer::Dirs dirs;
    ASSIGN_OR_RETURN(dirs.ingest, OpenDir(layout_.IngestDir(), true));
    const std::string entry = BaseName(layout_.IngestEntryDir(d));
    ASSIGN_OR_RETURN(committed, check_committed());
    if (committed) {
      // A writer that crashed after its rename may have left its empty ingest directory.
      (void)fs_->UnlinkAt(dirs.ingest.get(), entry, AT_REMOVEDIR);
      return std::unique_ptr<Writer>(new Writer(layout_, fs_, d, expected_size, std::move(lock),
                                                Writer::Dirs(), UniqueFd(), std::move(*digester),
                                                true));
    }
    ASSIGN_OR_RETURN(dirs.blobs, OpenDir(layout_.BlobAlgorithmDir(d.algorithm()), true));
    // Nobody else writes this digest now, so any ingest data left is from a writer that
    // failed or died: resumed below.
    Status s = [&]() -> Status {
      ASSIGN_OR_RETURN(dirs.entry, MakeDirAt(fs_, dirs.ingest.get(), entry, kDirMode));
      return CheckPrivateDir(dirs.entry.get(), layout_.IngestEntryDir(d));
    }();
    if (!s.ok()) {
      (void)fs_->UnlinkAt(dirs.ingest.get(), entry, AT_REMOVEDIR);
      return s;
    }
    auto data = fs_->OpenAt(dirs.entry.get(), BaseName(layout_.IngestDataFile(d)),
                            O_RDWR | O_CREAT | O_NOFOLLOW, kFileMode);
    if (!data.ok()) {
      (void)fs_->UnlinkAt(dirs.ingest.get(), entry, AT_REMOVEDIR);
      return data.status();
    }
    std::unique_ptr<Writer> w(new Writer(layout_, fs_, d, expected_size, std::move(lock),
                                         std::move(dirs), std::move(*data), std::move(*digester),
                                         false));
    RETURN_IF_ERROR(options.resume ? w->Resume(options.replay) : w->Restart());
    return w;
  }();
  if (!writer.ok()) return writer.status().WithContext(context);
  return writer;
}

Status Store::WriteBlob(const Digest& d, std::string_view bytes) {
  // Check first, so wrong bytes are refused even when the blob is already stored.
  ASSIGN_OR_RETURN(Digest got, DigestOf(d.algorithm(), bytes));
  if (got != d) {
    return DataLossError("digest mismatch: got " + got.String());
  }
  WriterOptions options;
  options.resume = false;  // all of it is here
  ASSIGN_OR_RETURN(std::unique_ptr<Writer> writer,
                   OpenWriter(d, static_cast<int64_t>(bytes.size()), options));
  if (writer->already_committed()) return OkStatus();
  RETURN_IF_ERROR(writer->Write(bytes));
  return writer->Commit();
}

Status Store::PutRef(const std::string& ref_name, const Descriptor& manifest) {
  const std::string context = "record " + ref_name;
  if (!IsValidRefName(ref_name)) {
    return InvalidArgumentError("record " + Quote(ref_name) +
                                ": not a valid image layout ref name");
  }
  if (manifest.digest.empty() || manifest.media_type.empty() || manifest.size < 0) {
    return InvalidArgumentError(context + ": incomplete descriptor");
  }
  if (!Has(manifest.digest, manifest.size)) {
    return FailedPreconditionError(context + ": manifest " + manifest.digest.String() + " (" +
                                   std::to_string(manifest.size) + " bytes) is not in the store");
  }
  Descriptor entry = manifest;
  entry.annotations[kRefNameAnnotation] = ref_name;
  json entry_json = DescriptorToJson(entry);

  return EditIndex(context, [&](json& manifests) {
    json updated = json::array();
    bool placed = false;
    for (json& e : manifests) {
      if (RefNameOf(e) != ref_name) {
        updated.push_back(std::move(e));
      } else if (!placed) {  // replace in place; drop any duplicates
        updated.push_back(entry_json);
        placed = true;
      }
    }
    if (!placed) updated.push_back(std::move(entry_json));
    manifests = std::move(updated);
    return OkStatus();
  });
}

Status Store::RemoveRef(const std::string& ref_name) {
  return EditIndex("untag " + ref_name, [&](json& manifests) {
    json kept = json::array();
    for (json& e : manifests) {
      if (RefNameOf(e) != ref_name) kept.push_back(std::move(e));
    }
    if (kept.size() == manifests.size()) return NotFoundError("no such image in the store");
    manifests = std::move(kept);
    return OkStatus();
  });
}

Status Store::EditIndex(const std::string& context,
                        const std::function<Status(json& manifests)>& edit) {
  auto locks = OpenDir(layout_.LocksDir(), true);
  if (!locks.ok()) return locks.status().WithContext(context);
  auto lock = FileLock::Acquire(fs_, locks->get(), BaseName(layout_.IndexLockFile()));
  if (!lock.ok()) return lock.status().WithContext(context);
  auto index = ReadIndex(layout_);
  if (!index.ok()) return index.status().WithContext(context);
  RETURN_IF_ERROR(edit((*index)["manifests"]).WithContext(context));
  return WriteFileAtomicallyAt(fs_, root_.get(), BaseName(layout_.IndexFile()),
                               BaseName(layout_.IndexTempFile()), index->dump(), kFileMode)
      .WithContext(context);
}

Result<UniqueFd> Store::OpenGcLockFile() const {
  ASSIGN_OR_RETURN(UniqueFd locks, OpenDir(layout_.LocksDir(), true));
  return fs_->OpenAt(locks.get(), BaseName(layout_.GcLockFile()), O_RDWR | O_CREAT | O_NOFOLLOW,
                     kFileMode);
}

Result<Store::GcLock> Store::LockAgainstGc() const {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenGcLockFile());
  int r;
  do {
    r = ::flock(fd.get(), LOCK_SH);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return ErrnoError(errno, "lock " + layout_.GcLockFile());
  GcLock lock;
  lock.fd_ = std::move(fd);
  return lock;
}

Result<Store::GcLock> Store::LockForGc(int64_t timeout_seconds) const {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenGcLockFile());
  constexpr auto kPoll = std::chrono::milliseconds(50);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  for (;;) {
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return ErrnoError(errno, "lock " + layout_.GcLockFile());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return UnavailableError("pulls in progress hold " + layout_.GcLockFile() + " after " +
                              std::to_string(timeout_seconds) +
                              "s; try again when they are done (or wait longer)");
    }
    std::this_thread::sleep_for(kPoll);
  }
  GcLock lock;
  lock.fd_ = std::move(fd);
  return lock;
}

Result<std::vector<Descriptor>> Store::ListRefs() const {
  ASSIGN_OR_RETURN(json index, ReadIndex(layout_));
  std::vector<Descriptor> out;
  const json& manifests = index["manifests"];
  for (size_t i = 0; i < manifests.size(); ++i) {
    auto d = DescriptorFromJson(manifests[i]);
    if (!d.ok()) {
      return d.status().WithContext(layout_.IndexFile() + ": manifests[" + std::to_string(i) + "]");
    }
    out.push_back(std::move(*d));
  }
  return out;
}

Result<std::optional<Descriptor>> Store::GetRef(const std::string& ref_name) const {
  ASSIGN_OR_RETURN(std::vector<Descriptor> refs, ListRefs());
  for (Descriptor& d : refs) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end() && it->second == ref_name) {
      return std::optional<Descriptor>(std::move(d));
    }
  }
  return std::optional<Descriptor>();
}

// ---- Writer ----

Writer::Writer(const Layout& layout, FileSystem* fs, Digest digest, int64_t expected_size,
               FileLock lock, Dirs dirs, UniqueFd data, Digester digester, bool already_committed)
    : layout_(layout),
      fs_(fs),
      digest_(std::move(digest)),
      expected_size_(expected_size),
      lock_(std::move(lock)),
      dirs_(std::move(dirs)),
      data_(std::move(data)),
      digester_(std::move(digester)),
      already_committed_(already_committed) {}

Writer::~Writer() {
  // Nothing to resume from: leave no empty entry behind.
  if (!already_committed_ && !committed_ && written_ == 0) RemoveIngest();
  lock_.Release();
}

Status Writer::Resume(const std::function<Status(const char*, size_t)>& replay) {
  const std::string path = layout_.IngestDataFile(digest_);
  struct stat st;
  if (::fstat(data_.get(), &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) return FailedPreconditionError(path + ": not a regular file");
  if (expected_size_ >= 0 && st.st_size > expected_size_) return Restart();  // not the blob
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(data_.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + path);
    if (n == 0) break;
    if (expected_size_ >= 0 && written_ + n > expected_size_) return Restart();
    digester_.Update(buf.data(), static_cast<size_t>(n));
    written_ += n;
    if (replay) RETURN_IF_ERROR(replay(buf.data(), static_cast<size_t>(n)));
  }
  return OkStatus();  // the file offset is at its end: Write appends
}

Status Writer::Restart() {
  if (!failure_.ok()) return failure_;
  if (already_committed_ || committed_) return FailedPreconditionError("blob already committed");
  const std::string path = layout_.IngestDataFile(digest_);
  RETURN_IF_ERROR(fs_->Ftruncate(data_.get(), 0).WithContext(path));
  if (::lseek(data_.get(), 0, SEEK_SET) != 0) return ErrnoError(errno, "seek " + path);
  ASSIGN_OR_RETURN(digester_, Digester::New(digest_.algorithm()));
  written_ = 0;
  got_.reset();
  return OkStatus();
}

void Writer::RemoveIngest() {
  data_.reset();
  if (!dirs_.entry) return;
  (void)fs_->UnlinkAt(dirs_.entry.get(), BaseName(layout_.IngestDataFile(digest_)), 0);
  (void)fs_->UnlinkAt(dirs_.ingest.get(), BaseName(layout_.IngestEntryDir(digest_)), AT_REMOVEDIR);
}

Status Writer::Fail(Status s, bool discard) {
  failure_ = std::move(s);
  if (discard) RemoveIngest();
  data_.reset();
  return failure_;
}

Status Writer::Write(const void* data, size_t n) {
  if (!failure_.ok()) return failure_;
  if (already_committed_ || committed_) {
    return FailedPreconditionError("blob already committed");
  }
  if (got_) return FailedPreconditionError("write after verify");
  if (expected_size_ >= 0 &&
      static_cast<uint64_t>(written_) + n > static_cast<uint64_t>(expected_size_)) {
    return Fail(DataLossError("size exceeds expected " + std::to_string(expected_size_)), true);
  }
  Status s = fs_->Write(data_.get(), data, n);
  if (!s.ok()) {
    // What reached the file stays, to resume from; the next writer re-reads it all.
    std::string m = s.message();
    if (m.starts_with("write: ")) m.erase(0, 7);
    return Fail(Status(s.code(), m + " writing " + layout_.IngestDataFile(digest_)), false);
  }
  digester_.Update(data, n);
  written_ += static_cast<int64_t>(n);
  return OkStatus();
}

Status Writer::Verify() {
  if (!failure_.ok()) return failure_;
  if (already_committed_ || committed_) return OkStatus();
  if (expected_size_ >= 0 && written_ != expected_size_) {
    return Fail(DataLossError("size mismatch: got " + std::to_string(written_) + ", want " +
                              std::to_string(expected_size_)),
                true);
  }
  if (!got_) got_ = digester_.Finish();
  if (*got_ != digest_) {
    return Fail(DataLossError("digest mismatch: got " + got_->String()), true);
  }
  return OkStatus();
}

Status Writer::Commit() {
  RETURN_IF_ERROR(Verify());
  if (already_committed_ || committed_) return OkStatus();
  // Read-only first, so that the fsync makes the mode durable along with the data.
  Status s = fs_->Fchmod(data_.get(), kBlobMode);
  if (!s.ok()) return Fail(std::move(s), true);
  s = fs_->Fsync(data_.get());
  if (!s.ok())
    return Fail(std::move(s).WithContext("fsync " + layout_.IngestDataFile(digest_)), true);
  data_.reset();
  const std::string blob = BaseName(layout_.BlobFile(digest_));
  s = fs_->RenameAt(dirs_.entry.get(), BaseName(layout_.IngestDataFile(digest_)), dirs_.blobs.get(),
                    blob);
  if (!s.ok()) return Fail(std::move(s).WithContext(layout_.IngestDataFile(digest_)), true);
  s = fs_->Fsync(dirs_.blobs.get());
  if (!s.ok()) {
    // Not durable: take it back so no blob is visible that a crash could lose.
    (void)fs_->UnlinkAt(dirs_.blobs.get(), blob, 0);
    return Fail(std::move(s).WithContext(layout_.BlobAlgorithmDir(digest_.algorithm())), true);
  }
  committed_ = true;
  (void)fs_->UnlinkAt(dirs_.ingest.get(), BaseName(layout_.IngestEntryDir(digest_)), AT_REMOVEDIR);
  return OkStatus();
}

}  // namespace hoist::content

#include "transport/oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <set>

#include "base/fs.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "content/index_file.h"
#include "manifest/manifest.h"
#include "transport/tar_writer.h"

namespace hoist::transport {

// The files of a layout, by name ("index.json", "blobs/sha256/<hex>").
class OciLayoutSource::Files {
 public:
  virtual ~Files() = default;
  virtual Result<std::string> Read(const std::string& name, size_t max_bytes) = 0;
  virtual Result<uint64_t> Size(const std::string& name) = 0;
  virtual Status Stream(const std::string& name, uint64_t from,
                        const std::function<Status(const char*, size_t)>& write) = 0;
};

namespace {

constexpr size_t kChunk = 1 << 20;
constexpr int kMaxEntries = 10000;

// A layout directory, every file opened by an O_NOFOLLOW walk from its fd.
class DirectoryFiles : public OciLayoutSource::Files {
 public:
  explicit DirectoryFiles(UniqueFd dir) : dir_(std::move(dir)) {}

  Result<std::string> Read(const std::string& name, size_t max_bytes) override {
    ASSIGN_OR_RETURN(UniqueFd fd, Open(name));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + name);
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      return ResourceExhaustedError(name + " is over the cap of " + std::to_string(max_bytes) +
                                    " bytes");
    }
    std::string bytes;
    RETURN_IF_ERROR(StreamFd(fd.get(), name, 0, [&](const char* d, size_t n) -> Status {
      if (bytes.size() + n > max_bytes) return ResourceExhaustedError(name + " grew");
      bytes.append(d, n);
      return OkStatus();
    }));
    return bytes;
  }
  Result<uint64_t> Size(const std::string& name) override {
    ASSIGN_OR_RETURN(UniqueFd fd, Open(name));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + name);
    return static_cast<uint64_t>(st.st_size);
  }
  Status Stream(const std::string& name, uint64_t from,
                const std::function<Status(const char*, size_t)>& write) override {
    ASSIGN_OR_RETURN(UniqueFd fd, Open(name));
    return StreamFd(fd.get(), name, from, write);
  }

 private:
  // Opens `name` relative to the layout: each directory and the file itself with O_NOFOLLOW,
  // the file regular.
  Result<UniqueFd> Open(const std::string& name) {
    std::vector<std::string_view> parts = Split(name, '/');
    UniqueFd dir;
    int at = dir_.get();
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      UniqueFd next(::openat(at, std::string(parts[i]).c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.valid()) return OpenError(name, errno);
      dir = std::move(next);
      at = dir.get();
    }
    UniqueFd fd(::openat(at, std::string(parts.back()).c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) return OpenError(name, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + name);
    if (!S_ISREG(st.st_mode)) return FailedPreconditionError(name + " is not a regular file");
    return fd;
  }
  static Status OpenError(const std::string& name, int err) {
    if (err == ELOOP || err == ENOTDIR) {
      return FailedPreconditionError(name + " is a symlink or not where a layout has it: refused");
    }
    if (err == ENOENT) return NotFoundError("layout has no " + name);
    return ErrnoError(err, "open " + name);
  }
  static Status StreamFd(int fd, const std::string& name, uint64_t from,
                         const std::function<Status(const char*, size_t)>& write) {
    std::vector<char> buf(kChunk);
    for (uint64_t at = from;;) {
      ssize_t r = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ErrnoError(errno, "read " + name);
      if (r == 0) return OkStatus();
      RETURN_IF_ERROR(write(buf.data(), static_cast<size_t>(r)));
      at += static_cast<uint64_t>(r);
    }
  }
  UniqueFd dir_;
};

// A layout in a tar, by its members' exact names. As in a directory, a link where the layout
// has a file is FailedPrecondition.
class ArchiveFiles : public OciLayoutSource::Files {
 public:
  explicit ArchiveFiles(std::unique_ptr<TarIndex> archive) : archive_(std::move(archive)) {}
  Result<std::string> Read(const std::string& name, size_t max_bytes) override {
    ASSIGN_OR_RETURN(const TarMember* m, Regular(name));
    return archive_->ReadAll(*m, max_bytes);
  }
  Result<uint64_t> Size(const std::string& name) override {
    ASSIGN_OR_RETURN(const TarMember* m, Regular(name));
    return m->size;
  }
  Status Stream(const std::string& name, uint64_t from,
                const std::function<Status(const char*, size_t)>& write) override {
    ASSIGN_OR_RETURN(const TarMember* m, Regular(name));
    return archive_->Read(*m, from, write);
  }

 private:
  Result<const TarMember*> Regular(const std::string& name) const {
    const TarMember* m = archive_->Lookup(name);
    if (m != nullptr && m->type != unpack::EntryType::kRegular) {
      return FailedPreconditionError("archive member " + Quote(name) +
                                     " is a link or special file: refused");
    }
    return archive_->Find(name);
  }

  std::unique_ptr<TarIndex> archive_;
};

std::string RefNameOf(const Descriptor& d) {
  auto it = d.annotations.find(content::kRefNameAnnotation);
  return it == d.annotations.end() ? "" : it->second;
}

}  // namespace

std::string LayoutBlobPath(const Digest& d) { return "blobs/" + d.algorithm() + "/" + d.hex(); }

std::string LayoutIndexJson(const std::vector<Descriptor>& entries) {
  nlohmann::json manifests = nlohmann::json::array();
  for (const auto& e : entries) manifests.push_back(content::DescriptorToJson(e));
  nlohmann::json index = {
      {"schemaVersion", 2}, {"mediaType", content::kOciIndexMediaType}, {"manifests", manifests}};
  return index.dump();
}

Status CopyVerified(ImageSource& src, const Descriptor& d, const std::function<Status()>& restart,
                    const std::function<Status(const char*, size_t)>& write) {
  ASSIGN_OR_RETURN(content::Digester digester, content::Digester::New(d.digest.algorithm()));
  int64_t got = 0;
  RETURN_IF_ERROR(
      src.Blob(d, registry::BlobSink{
                      [&]() -> Status {
                        RETURN_IF_ERROR(restart());
                        ASSIGN_OR_RETURN(digester, content::Digester::New(d.digest.algorithm()));
                        got = 0;
                        return OkStatus();
                      },
                      [&](const char* data, size_t n) -> Status {
                        got += static_cast<int64_t>(n);
                        if (got > d.size) {
                          return DataLossError("size exceeds expected " + std::to_string(d.size));
                        }
                        digester.Update(data, n);
                        return write(data, n);
                      },
                      0}));
  if (got != d.size) {
    return DataLossError("size mismatch: got " + std::to_string(got) + ", want " +
                         std::to_string(d.size));
  }
  Digest digest = digester.Finish();
  if (digest != d.digest) {
    return DataLossError("digest mismatch: got " + digest.String() + ", want " + d.digest.String());
  }
  return OkStatus();
}

// ---- source ----

OciLayoutSource::OciLayoutSource(std::unique_ptr<Files> files) : files_(std::move(files)) {}
OciLayoutSource::~OciLayoutSource() = default;

Result<std::unique_ptr<OciLayoutSource>> OciLayoutSource::OpenDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open layout " + Quote(dir));
  std::unique_ptr<OciLayoutSource> src(
      new OciLayoutSource(std::make_unique<DirectoryFiles>(std::move(fd))));
  RETURN_IF_ERROR(src->ReadIndex().WithContext("layout " + Quote(dir)));
  return src;
}

Result<std::unique_ptr<OciLayoutSource>> OciLayoutSource::OpenArchive(
    std::unique_ptr<TarIndex> archive) {
  std::unique_ptr<OciLayoutSource> src(
      new OciLayoutSource(std::make_unique<ArchiveFiles>(std::move(archive))));
  RETURN_IF_ERROR(src->ReadIndex());
  return src;
}

Status OciLayoutSource::ReadIndex() {
  ASSIGN_OR_RETURN(std::string layout, files_->Read("oci-layout", 4096));
  auto version = ParseJson<nlohmann::json>(layout, "oci-layout");
  if (!version.ok() || !version->is_object() || !version->contains("imageLayoutVersion")) {
    return DataLossError("oci-layout is not an OCI image layout version file");
  }
  ASSIGN_OR_RETURN(std::string text, files_->Read("index.json", manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(nlohmann::json index, content::ParseIndex(text));
  const nlohmann::json& manifests = index["manifests"];
  if (manifests.size() > kMaxEntries) {
    return ResourceExhaustedError("index.json lists more than " + std::to_string(kMaxEntries) +
                                  " images");
  }
  for (const auto& m : manifests) {
    auto d = content::DescriptorFromJson(m);
    if (!d.ok()) return d.status().WithContext("index.json");
    entries_.push_back(std::move(d).value());
  }
  return OkStatus();
}

Status OciLayoutSource::Select(const std::string& tag) {
  if (tag.empty()) {
    if (entries_.empty()) return NotFoundError("index.json lists no image");
    if (entries_.size() != 1) {
      return InvalidArgumentError("index.json lists " + std::to_string(entries_.size()) +
                                  " images: name one (its org.opencontainers.image.ref.name)");
    }
    selected_ = 0;
    return OkStatus();
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (RefNameOf(entries_[i]) == tag) {
      selected_ = i;
      return OkStatus();
    }
  }
  return NotFoundError("index.json has no image named " + Quote(tag));
}

Result<ManifestBytes> OciLayoutSource::TopManifest() {
  const Descriptor& d = entries_.at(selected_);
  ASSIGN_OR_RETURN(std::string bytes,
                   files_->Read(LayoutBlobPath(d.digest), manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(d.digest.algorithm(), bytes));
  if (got != d.digest) {
    return DataLossError("manifest " + d.digest.String() + ": digest mismatch: got " +
                         got.String());
  }
  ASSIGN_OR_RETURN(ManifestBytes m, MakeManifestBytes(std::move(bytes), d.media_type));
  m.digest = got;
  return m;
}

Result<ManifestBytes> OciLayoutSource::Manifest(const Digest& digest) {
  ASSIGN_OR_RETURN(std::string bytes,
                   files_->Read(LayoutBlobPath(digest), manifest::kMaxManifestBytes));
  return MakeManifestBytes(std::move(bytes), "");
}

Status OciLayoutSource::Blob(const Descriptor& d, const registry::BlobSink& sink) {
  const std::string name = LayoutBlobPath(d.digest);
  ASSIGN_OR_RETURN(uint64_t size, files_->Size(name));
  if (d.size < 0 || size != static_cast<uint64_t>(d.size)) {
    return DataLossError(name + " is " + std::to_string(size) + " bytes, its descriptor says " +
                         std::to_string(d.size));
  }
  uint64_t from = static_cast<uint64_t>(std::max<int64_t>(0, sink.held));
  if (from > size) {
    RETURN_IF_ERROR(sink.restart());
    from = 0;
  }
  return files_->Stream(name, from, sink.write);
}

std::vector<std::string> OciLayoutSource::Names() {
  std::string name = RefNameOf(entries_.at(selected_));
  if (name.find_first_of("/:@") == std::string::npos) return {};
  return {name};
}

// ---- destinations ----

namespace {

// The entries of index.json, with `d` named `name` added (replacing an entry of that name).
void AddEntry(std::vector<Descriptor>& entries, Descriptor d, const std::string& name) {
  d.annotations.clear();
  d.urls.clear();
  if (!name.empty()) {
    std::erase_if(entries, [&](const Descriptor& e) { return RefNameOf(e) == name; });
    d.annotations[content::kRefNameAnnotation] = name;
  }
  entries.push_back(std::move(d));
}

Descriptor EntryFor(const ManifestBytes& top) {
  Descriptor d;
  d.media_type = top.media_type;
  d.digest = top.digest;
  d.size = static_cast<int64_t>(top.bytes.size());
  return d;
}

class OciDirectoryDestination : public ImageDestination {
 public:
  OciDirectoryDestination(std::string path, UniqueFd dir, std::vector<Descriptor> entries)
      : path_(std::move(path)), dir_(std::move(dir)), entries_(std::move(entries)) {}

  Result<bool> Reuse(const BlobInfo& b) override {
    ASSIGN_OR_RETURN(UniqueFd alg, AlgorithmDir(b.blob.digest));
    struct stat st;
    if (::fstatat(alg.get(), b.blob.digest.hex().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return false;
    }
    return S_ISREG(st.st_mode) && st.st_size == b.blob.size;
  }
  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    return Write(b.blob, [&](int fd) {
      return CopyVerified(
          src, b.blob,
          [&]() -> Status {
            RETURN_IF_ERROR(FileSystem::Default()->Ftruncate(fd, 0));
            if (::lseek(fd, 0, SEEK_SET) < 0) return ErrnoError(errno, "seek");
            return OkStatus();
          },
          [&](const char* data, size_t n) { return WriteAll(fd, data, n); });
    });
  }
  Status PutManifest(const ManifestBytes& m) override {
    Descriptor d = EntryFor(m);
    return Write(d, [&](int fd) { return WriteAll(fd, m.bytes.data(), m.bytes.size()); });
  }
  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override {
    RETURN_IF_ERROR(PutManifest(top));
    std::lock_guard<std::mutex> lock(mu_);
    AddEntry(entries_, EntryFor(top), names.empty() ? "" : names.front());
    return WriteFileAtomicallyAt(FileSystem::Default(), dir_.get(), "index.json", "index.json.tmp",
                                 LayoutIndexJson(entries_), 0644)
        .WithContext("write index.json in " + Quote(path_));
  }

 private:
  Result<UniqueFd> AlgorithmDir(const Digest& d) {
    FileSystem* fs = FileSystem::Default();
    ASSIGN_OR_RETURN(UniqueFd blobs, MakeDirAt(fs, dir_.get(), "blobs", 0755));
    return MakeDirAt(fs, blobs.get(), d.algorithm(), 0755);
  }
  // Writes blob `d` with `fill` into a temporary file, then renames it into place; `fill` has
  // verified the bytes.
  Status Write(const Descriptor& d, const std::function<Status(int fd)>& fill) {
    FileSystem* fs = FileSystem::Default();
    ASSIGN_OR_RETURN(UniqueFd alg, AlgorithmDir(d.digest));
    const std::string tmp = ".tmp-" + d.digest.hex() + "-" + std::to_string(::getpid()) + "-" +
                            std::to_string(counter_.fetch_add(1));
    ASSIGN_OR_RETURN(UniqueFd fd,
                     fs->OpenAt(alg.get(), tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644));
    Status s = fill(fd.get());
    if (s.ok()) s = fs->Fsync(fd.get());
    if (s.ok()) s = fs->RenameAt(alg.get(), tmp, alg.get(), d.digest.hex());
    if (!s.ok()) {
      (void)fs->UnlinkAt(alg.get(), tmp, 0);
      return s;
    }
    return fs->Fsync(alg.get());
  }

  const std::string path_;
  UniqueFd dir_;
  std::mutex mu_;
  std::vector<Descriptor> entries_;  // guarded by mu_
  std::atomic<uint64_t> counter_{0};
};

class OciArchiveDestination : public ImageDestination {
 public:
  OciArchiveDestination(std::string path, std::string tmp, UniqueFd fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(std::move(fd)), tar_(fd_.get()) {}
  ~OciArchiveDestination() override {
    if (!tmp_.empty() && !closed_) ::unlink(tmp_.c_str());
  }

  Result<bool> Reuse(const BlobInfo& b) override {
    std::lock_guard<std::mutex> lock(mu_);
    return written_.count(b.blob.digest) > 0;
  }
  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Add(b.blob, [&]() -> Status {
      bool started = false;
      return CopyVerified(
          src, b.blob,
          [&]() -> Status {
            if (started) return InternalError("the source started again: cannot rewind a tar");
            return OkStatus();
          },
          [&](const char* data, size_t n) {
            started = true;
            return tar_.Write(data, n);
          });
    });
  }
  Status PutManifest(const ManifestBytes& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Add(EntryFor(m), [&] { return tar_.Write(m.bytes.data(), m.bytes.size()); });
  }
  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override {
    RETURN_IF_ERROR(PutManifest(top));
    std::lock_guard<std::mutex> lock(mu_);
    AddEntry(entries_, EntryFor(top), names.empty() ? "" : names.front());
    return OkStatus();
  }
  Status Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(failed_);
    Status s = tar_.AddFile("index.json", LayoutIndexJson(entries_));
    if (s.ok()) s = tar_.AddFile("oci-layout", content::kOciLayoutJson);
    if (s.ok()) s = tar_.Finish();
    if (s.ok() && !tmp_.empty()) {
      FileSystem* fs = FileSystem::Default();
      s = fs->Fsync(fd_.get());
      if (s.ok()) s = fs->RenameAt(AT_FDCWD, tmp_, AT_FDCWD, path_);
      if (s.ok()) s = FsyncDir(fs, DirName(path_));
    }
    if (!s.ok()) return s.WithContext("write " + Quote(path_));
    closed_ = true;
    return OkStatus();
  }

 private:
  // One member blobs/<alg>/<hex> of d's size, its data from `fill`; the caller holds mu_. A
  // failure part-way leaves the tar broken: every later call fails.
  Status Add(const Descriptor& d, const std::function<Status()>& fill) {
    RETURN_IF_ERROR(failed_);
    if (written_.count(d.digest) > 0) return OkStatus();
    if (written_.empty()) {
      failed_ = tar_.AddDirectory("blobs/");
      RETURN_IF_ERROR(failed_);
    }
    if (dirs_.insert(d.digest.algorithm()).second) {
      failed_ = tar_.AddDirectory("blobs/" + d.digest.algorithm() + "/");
      RETURN_IF_ERROR(failed_);
    }
    failed_ = tar_.BeginFile(LayoutBlobPath(d.digest), static_cast<uint64_t>(d.size));
    if (failed_.ok()) failed_ = fill();
    if (failed_.ok()) failed_ = tar_.EndFile();
    RETURN_IF_ERROR(failed_);
    written_.insert(d.digest);
    return OkStatus();
  }

  const std::string path_;
  const std::string tmp_;  // empty for standard output
  UniqueFd fd_;
  std::mutex mu_;  // guards everything below: the tar is written by one blob at a time
  TarWriter tar_;
  Status failed_;
  std::set<Digest> written_;
  std::set<std::string> dirs_;
  std::vector<Descriptor> entries_;
  bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<ImageDestination>> OpenOciLayoutDestination(const std::string& dir) {
  FileSystem* fs = FileSystem::Default();
  RETURN_IF_ERROR(MakeDirs(fs, dir, 0755));
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open layout " + Quote(dir));
  std::vector<Descriptor> entries;
  struct stat st;
  if (::fstatat(fd.get(), "index.json", &st, AT_SYMLINK_NOFOLLOW) == 0) {
    // An existing layout is added to; a damaged one is not overwritten.
    ASSIGN_OR_RETURN(auto existing, OciLayoutSource::OpenDirectory(dir));
    entries = existing->entries();
  }
  RETURN_IF_ERROR(WriteFileAtomicallyAt(fs, fd.get(), "oci-layout", "oci-layout.tmp",
                                        content::kOciLayoutJson, 0644)
                      .WithContext("layout " + Quote(dir)));
  return std::unique_ptr<ImageDestination>(
      new OciDirectoryDestination(dir, std::move(fd), std::move(entries)));
}

Result<std::unique_ptr<ImageDestination>> OpenOciArchiveDestination(const std::string& file) {
  if (file == "-") {
    UniqueFd out(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
    if (!out.valid()) return ErrnoError(errno, "standard output");
    return std::unique_ptr<ImageDestination>(new OciArchiveDestination(file, "", std::move(out)));
  }
  const std::string tmp = file + ".tmp-" + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError(errno, "create " + Quote(tmp));
  return std::unique_ptr<ImageDestination>(new OciArchiveDestination(file, tmp, std::move(fd)));
}

}  // namespace hoist::transport

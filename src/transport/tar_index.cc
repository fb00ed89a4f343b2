#include "transport/tar_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <vector>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "unpack/tar_reader.h"

namespace hoist::transport {
namespace {

constexpr size_t kChunk = 1 << 20;

}  // namespace

Result<UniqueFd> OpenSpoolFile(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return ErrnoError(errno, "open spool file in " + Quote(dir));
  }
  std::string name = dir + "/.hoist-spool-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "create spool file in " + Quote(dir));
  ::unlink(name.c_str());
  return UniqueFd(fd);
}

// Feeds the inflated archive to a TarReader and records the members. Data offsets come from
// where the reader's data slices lie in the chunk being fed.
class TarIndexer : public unpack::TarHandler {
 public:
  explicit TarIndexer(TarIndex* index) : index_(index) {}

  // Feeds `n` bytes that start at archive offset `offset`.
  Status Feed(unpack::TarReader& reader, const char* data, size_t n, uint64_t offset) {
    chunk_ = data;
    chunk_len_ = n;
    chunk_offset_ = offset;
    return reader.Feed(data, n);
  }

  Status OnEntry(const unpack::TarEntry& e) override {
    cur_ = TarMember{};
    cur_.name = NormalizeMemberName(e.path);
    cur_.type = e.type;
    cur_.size = e.type == unpack::EntryType::kRegular ? static_cast<uint64_t>(e.size) : 0;
    next_.reset();
    head_.clear();
    ASSIGN_OR_RETURN(digester_, content::Digester::New("sha256"));
    return OkStatus();
  }
  Status OnData(const char* data, size_t n) override {
    const bool inside = data >= chunk_ && data + n <= chunk_ + chunk_len_;
    const uint64_t at = chunk_offset_ + static_cast<uint64_t>(data - chunk_);
    if (!next_) cur_.offset = at;
    if (!inside || (next_ && *next_ != at)) {
      return DataLossError(Quote(cur_.name) + " is not stored contiguously in the archive");
    }
    next_ = at + n;
    if (head_.size() < 4) head_.append(data, std::min<size_t>(n, 4 - head_.size()));
    digester_->Update(data, n);
    return OkStatus();
  }
  Status OnHole(uint64_t) override {
    // A sparse file's data is not one range of the archive.
    return DataLossError(Quote(cur_.name) + " is a sparse file in the archive");
  }
  Status OnEntryEnd() override {
    cur_.digest = digester_->Finish();
    cur_.compression = unpack::DetectCompression(head_);
    if (cur_.name.empty()) return OkStatus();  // absolute or "..": never looked up
    auto [it, inserted] = index_->members_.try_emplace(cur_.name, cur_);
    const bool both_directories = it->second.type == unpack::EntryType::kDirectory &&
                                  cur_.type == unpack::EntryType::kDirectory;
    if (!inserted && !both_directories) {  // a name given twice is ambiguous
      return DataLossError(Quote(cur_.name) + " appears more than once in the archive");
    }
    return OkStatus();
  }

 private:
  TarIndex* index_;
  const char* chunk_ = nullptr;
  size_t chunk_len_ = 0;
  uint64_t chunk_offset_ = 0;
  TarMember cur_;
  std::optional<uint64_t> next_;  // where the next data slice must start
  std::string head_;              // the first bytes of the data
  std::optional<content::Digester> digester_;
};

std::string NormalizeMemberName(std::string_view name) {
  if (name.empty() || name.front() == '/') return "";
  std::string out;
  for (std::string_view part : Split(name, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return "";
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

Result<std::unique_ptr<TarIndex>> TarIndex::Open(const std::string& path,
                                                 const std::string& spool_dir,
                                                 const TarIndexLimits& limits) {
  std::unique_ptr<TarIndex> index(new TarIndex());
  UniqueFd input;
  int in_fd = STDIN_FILENO;
  if (path != "-") {
    // O_NONBLOCK: opening a fifo does not wait for a writer; reads block again below.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ErrnoError(errno, "open " + Quote(path));
    input.reset(fd);
    in_fd = fd;
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
      return ErrnoError(errno, "open " + Quote(path));
    }
  }
  struct stat st;
  if (::fstat(in_fd, &st) != 0) return ErrnoError(errno, "stat " + Quote(path));
  if (S_ISDIR(st.st_mode)) return InvalidArgumentError(Quote(path) + " is a directory");
  // Read in place only a regular file that is a plain tar.
  char magic[4];
  ssize_t got = S_ISREG(st.st_mode) ? ::pread(in_fd, magic, sizeof magic, 0) : -1;
  index->spooled_ =
      !input.valid() ||
      !(got >= 0 && unpack::DetectCompression(std::string_view(magic, static_cast<size_t>(got))) ==
                        unpack::Compression::kNone);
  if (index->spooled_) {
    ASSIGN_OR_RETURN(index->fd_, OpenSpoolFile(spool_dir));
  } else {
    index->fd_ = std::move(input);
  }

  TarIndexer indexer(index.get());
  unpack::TarLimits tar_limits;
  tar_limits.max_entries = limits.max_members;
  unpack::TarReader reader(&indexer, tar_limits);
  uint64_t total = 0;
  unpack::Decompressor inflate(
      [&](const char* data, size_t n) -> Status {
        if (index->spooled_) {
          RETURN_IF_ERROR(WriteAll(index->fd_.get(), data, n).WithContext("write spool file"));
        }
        RETURN_IF_ERROR(indexer.Feed(reader, data, n, total));
        total += n;
        return OkStatus();
      },
      limits.max_bytes);
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(in_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + Quote(path));
    if (n == 0) break;
    RETURN_IF_ERROR(inflate.Feed(buf.data(), static_cast<size_t>(n)));
  }
  RETURN_IF_ERROR(inflate.Finish());
  RETURN_IF_ERROR(reader.Finish());
  return index;
}

const TarMember* TarIndex::Lookup(std::string_view name) const {
  auto it = members_.find(NormalizeMemberName(name));
  return it == members_.end() ? nullptr : &it->second;
}

Result<const TarMember*> TarIndex::Find(std::string_view name) const {
  if (NormalizeMemberName(name).empty()) {
    return InvalidArgumentError(Quote(name) + " is not a relative name inside the archive");
  }
  const TarMember* m = Lookup(name);
  if (m == nullptr) return NotFoundError(Quote(name) + " is not in the archive");
  if (m->type != unpack::EntryType::kRegular) {
    return DataLossError(Quote(name) + " is not a regular file in the archive");
  }
  return m;
}

Status TarIndex::Read(const TarMember& m, uint64_t from,
                      const std::function<Status(const char*, size_t)>& sink) const {
  std::vector<char> buf(std::min<uint64_t>(kChunk, std::max<uint64_t>(m.size, 1)));
  for (uint64_t pos = from; pos < m.size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), m.size - pos));
    ssize_t n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(m.offset + pos));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + Quote(m.name));
    if (n == 0) return DataLossError(Quote(m.name) + ": the archive ends early (changed?)");
    RETURN_IF_ERROR(sink(buf.data(), static_cast<size_t>(n)));
    pos += static_cast<uint64_t>(n);
  }
  return OkStatus();
}

Result<std::string> TarIndex::ReadAll(const TarMember& m, size_t max_bytes) const {
  if (m.size > max_bytes) {
    return ResourceExhaustedError(Quote(m.name) + " of " + std::to_string(m.size) +
                                  " bytes is over the cap of " + std::to_string(max_bytes));
  }
  std::string out;
  out.reserve(m.size);
  RETURN_IF_ERROR(Read(m, 0, [&](const char* data, size_t n) {
    out.append(data, n);
    return OkStatus();
  }));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf("sha256", out));
  if (got != m.digest) return DataLossError(Quote(m.name) + " changed since it was indexed");
  return out;
}

}  // namespace hoist::transport

#include "transport/archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/status_macros.h"
#include "base/strings.h"
#include "unpack/decompress.h"
#include "unpack/tar_reader.h"

namespace hoist::transport {
namespace {

constexpr size_t kChunk = 1 << 20;

// pread until n bytes or the end of the file; returns the bytes read.
Result<size_t> PreadFull(int fd, char* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "read archive");
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// Copies `in` (read sequentially) into a new unnamed file in spool_dir_fd, inflated.
Result<UniqueFd> Spool(int in, int spool_dir_fd, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd out,
                   FileSystem::Default()->OpenAt(spool_dir_fd, ".", O_TMPFILE | O_RDWR, 0600));
  unpack::Decompressor inflate(
      [&](const char* data, size_t n) { return WriteAll(out.get(), data, n); }, max_bytes);
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "read archive");
    if (r == 0) break;
    RETURN_IF_ERROR(inflate.Feed(buf.data(), static_cast<size_t>(r)));
  }
  RETURN_IF_ERROR(inflate.Finish());
  return out;
}

// Remembers where each member's data lies, from the offsets of the chunks it is fed.
class IndexHandler : public unpack::TarHandler {
 public:
  explicit IndexHandler(std::map<std::string, ArchiveReader::Member, std::less<>>& members)
      : members_(members) {}
  const char* chunk = nullptr;  // the chunk being fed, which starts at archive offset `base`
  uint64_t base = 0;

  Status OnEntry(const unpack::TarEntry& e) override {
    std::string_view name = e.path;
    while (name.substr(0, 2) == "./") name.remove_prefix(2);
    name_ = std::string(name);
    member_ = {e.type == unpack::EntryType::kRegular, 0, 0};
    if (e.type == unpack::EntryType::kDirectory) name_.clear();  // not remembered
    started_ = false;
    return OkStatus();
  }
  Status OnData(const char* data, size_t n) override {
    const uint64_t at = base + static_cast<uint64_t>(data - chunk);
    if (!started_) {
      member_.offset = at;
      started_ = true;
    } else if (at != member_.offset + member_.size) {
      return DataLossError("archive member " + Quote(name_) + " is not stored contiguously");
    }
    member_.size += n;
    return OkStatus();
  }
  Status OnHole(uint64_t) override {
    return DataLossError("archive member " + Quote(name_) + " is a sparse file");
  }
  Status OnEntryEnd() override {
    if (name_.empty()) return OkStatus();
    if (!members_.emplace(name_, member_).second) {
      return DataLossError("archive has two members named " + Quote(name_));
    }
    return OkStatus();
  }

 private:
  std::map<std::string, ArchiveReader::Member, std::less<>>& members_;
  std::string name_;
  ArchiveReader::Member member_;
  bool started_ = false;
};

}  // namespace

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(const std::string& path,
                                                           int spool_dir_fd,
                                                           const ArchiveLimits& limits) {
  UniqueFd in;
  if (path == "-") {
    in.reset(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3));
  } else {
    in.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  }
  if (!in.valid()) return ErrnoError(errno, "open " + Quote(path));
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return ErrnoError(errno, "stat " + Quote(path));
  if (S_ISDIR(st.st_mode)) return InvalidArgumentError(Quote(path) + " is a directory");
  bool spool = !S_ISREG(st.st_mode);
  if (!spool) {
    char head[4];
    ASSIGN_OR_RETURN(size_t n, PreadFull(in.get(), head, sizeof head, 0));
    spool = unpack::DetectCompression(std::string_view(head, n)) != unpack::Compression::kNone;
  }
  if (spool) {
    // Back to blocking reads for a pipe or terminal.
    ::fcntl(in.get(), F_SETFL, ::fcntl(in.get(), F_GETFL) & ~O_NONBLOCK);
    auto spooled = Spool(in.get(), spool_dir_fd, limits.max_bytes);
    if (!spooled.ok()) return spooled.status().WithContext("read " + Quote(path));
    in = std::move(spooled).value();
  }
  std::unique_ptr<ArchiveReader> reader(new ArchiveReader(std::move(in)));
  RETURN_IF_ERROR(reader->Index(limits).WithContext("read " + Quote(path)));
  return reader;
}

Status ArchiveReader::Index(const ArchiveLimits& limits) {
  IndexHandler handler(members_);
  unpack::TarLimits tar_limits;
  tar_limits.max_entries = limits.max_entries;
  unpack::TarReader tar(&handler, tar_limits);
  std::vector<char> buf(kChunk);
  for (uint64_t offset = 0;;) {
    if (offset > limits.max_bytes) {
      return ResourceExhaustedError("archive larger than " + std::to_string(limits.max_bytes) +
                                    " bytes");
    }
    ASSIGN_OR_RETURN(size_t n, PreadFull(fd_.get(), buf.data(), buf.size(), offset));
    if (n == 0) break;
    handler.chunk = buf.data();
    handler.base = offset;
    RETURN_IF_ERROR(tar.Feed(buf.data(), n));
    offset += n;
  }
  return tar.Finish();
}

const ArchiveReader::Member* ArchiveReader::Find(std::string_view name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second;
}

Result<const ArchiveReader::Member*> ArchiveReader::Regular(const std::string& name) const {
  const Member* m = Find(name);
  if (m == nullptr) return NotFoundError("archive has no " + Quote(name));
  if (!m->regular) {
    return FailedPreconditionError("archive member " + Quote(name) +
                                   " is a link or special file: refused");
  }
  return m;
}

Result<std::string> ArchiveReader::ReadMember(const std::string& name, size_t max_bytes) const {
  ASSIGN_OR_RETURN(const Member* m, Regular(name));
  if (m->size > max_bytes) {
    return ResourceExhaustedError("archive member " + Quote(name) + " is over the cap of " +
                                  std::to_string(max_bytes) + " bytes");
  }
  std::string bytes(m->size, '\0');
  ASSIGN_OR_RETURN(size_t n, PreadFull(fd_.get(), bytes.data(), bytes.size(), m->offset));
  if (n != bytes.size()) return DataLossError("archive member " + Quote(name) + " is truncated");
  return bytes;
}

Status ArchiveReader::StreamMember(const std::string& name, uint64_t from,
                                   const std::function<Status(const char*, size_t)>& write) const {
  ASSIGN_OR_RETURN(const Member* m, Regular(name));
  std::vector<char> buf(kChunk);
  for (uint64_t at = from; at < m->size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), m->size - at));
    ASSIGN_OR_RETURN(size_t n, PreadFull(fd_.get(), buf.data(), want, m->offset + at));
    if (n == 0) return DataLossError("archive member " + Quote(name) + " is truncated");
    RETURN_IF_ERROR(write(buf.data(), n));
    at += n;
  }
  return OkStatus();
}

// ---- TarWriter ----

namespace {

// `value` in octal, right-aligned in a field of `width` bytes (the last a NUL).
void Octal(char* field, size_t width, uint64_t value) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0; value >>= 3) field[i] = static_cast<char>('0' + (value & 7));
}

// One PAX record: "<len> <key>=<value>\n", where len counts itself.
std::string PaxRecord(const std::string& key, const std::string& value) {
  const size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + std::to_string(body).size();
  if (std::to_string(len).size() != std::to_string(body).size()) ++len;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

}  // namespace

Status TarWriter::Header(const std::string& name, uint64_t size, char type) {
  constexpr uint64_t kMaxOctalSize = 077777777777ULL;
  std::string pax;
  if (name.size() > 100) pax += PaxRecord("path", name);
  if (size > kMaxOctalSize) pax += PaxRecord("size", std::to_string(size));
  if (!pax.empty()) {
    RETURN_IF_ERROR(Header("PaxHeaders/entry", pax.size(), 'x'));
    RETURN_IF_ERROR(Write(pax.data(), pax.size()));
    RETURN_IF_ERROR(EndFile());
  }
  char h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  Octal(h + 100, 8, type == '5' ? 0755 : 0644);
  Octal(h + 108, 8, 0);
  Octal(h + 116, 8, 0);
  Octal(h + 124, 12, std::min(size, kMaxOctalSize));
  Octal(h + 136, 12, 0);
  h[156] = type;
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  Octal(h + 148, 7, sum);
  RETURN_IF_ERROR(WriteAll(fd_, h, sizeof h));
  left_ = type == '5' ? 0 : size;
  written_ = 0;
  return OkStatus();
}

Status TarWriter::AddDirectory(const std::string& name) { return Header(name, 0, '5'); }

Status TarWriter::BeginFile(const std::string& name, uint64_t size) {
  return Header(name, size, '0');
}

Status TarWriter::Write(const char* data, size_t n) {
  if (n > left_) return InternalError("tar writer: more data than the header announced");
  RETURN_IF_ERROR(WriteAll(fd_, data, n));
  left_ -= n;
  written_ += n;
  return OkStatus();
}

Status TarWriter::EndFile() {
  if (left_ != 0) return InternalError("tar writer: less data than the header announced");
  static const char zeros[512] = {};
  const size_t pad = (512 - written_ % 512) % 512;
  written_ = 0;
  return WriteAll(fd_, zeros, pad);
}

Status TarWriter::AddFile(const std::string& name, std::string_view bytes) {
  RETURN_IF_ERROR(BeginFile(name, bytes.size()));
  RETURN_IF_ERROR(Write(bytes.data(), bytes.size()));
  return EndFile();
}

Status TarWriter::Finish() {
  static const char zeros[1024] = {};
  return WriteAll(fd_, zeros, sizeof zeros);
}

}  // namespace hoist::transport

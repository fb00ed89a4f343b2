// Image archives as tar files: reading one by random access to its members, never extracting it
// to host paths, and writing one as a stream.
//
// Reading. An archive's member names come from a hostile file: they are only ever keys of a map,
// never paths on the host. ArchiveReader reads the whole tar once (unpack::TarReader: ustar, GNU,
// PAX) and remembers where each regular file's data lies; a reader asks for a member by the exact
// name it expects ("index.json", "blobs/sha256/<hex>", "manifest.json") and gets bytes from that
// offset. A member that is a symlink or hardlink is remembered as such, so that asking for it is
// refused rather than answered with nothing. A compressed archive (gzip or zstd, told by its magic
// bytes) and standard input ("-") are first spooled, inflated, into a private unnamed temporary
// file (O_TMPFILE) in `spool_dir`, which disappears with the reader.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "hoist/status.h"
#include "registry/fetcher.h"  // BlobSink

namespace hoist::transport {

struct ArchiveLimits {
  uint64_t max_entries = 1'000'000;   // members of the tar
  uint64_t max_bytes = 128ULL << 30;  // the (inflated) archive
};

class ArchiveReader {
 public:
  struct Member {
    bool regular = true;  // false: a symlink, hardlink or other non-file entry of that name
    uint64_t offset = 0;  // of its data in the (inflated) archive
    uint64_t size = 0;
  };

  // Opens and indexes `path` ("-": standard input). `spool_dir_fd`: a private directory for the
  // temporary file of a compressed archive or of standard input. A name that appears twice, or a
  // malformed tar, is DataLoss; more than limits allow is ResourceExhausted.
  static Result<std::unique_ptr<ArchiveReader>> Open(const std::string& path, int spool_dir_fd,
                                                     const ArchiveLimits& limits = {});

  // The member called `name` (a leading "./" in the archive is ignored); nullptr if there is none.
  const Member* Find(std::string_view name) const;
  // Member `name`'s whole data, at most max_bytes (ResourceExhausted beyond). NotFound if absent;
  // FailedPrecondition for a link.
  Result<std::string> ReadMember(const std::string& name, size_t max_bytes) const;
  // Streams member `name` from byte `from` on to `write`, in chunks. Errors as ReadMember.
  Status StreamMember(const std::string& name, uint64_t from,
                      const std::function<Status(const char*, size_t)>& write) const;
  // "/proc/self/fd/N" naming the (inflated) archive, for another reader of the same file.
  std::string ProcPath() const { return "/proc/self/fd/" + std::to_string(fd_.get()); }
  const std::map<std::string, Member, std::less<>>& members() const { return members_; }

 private:
  explicit ArchiveReader(UniqueFd fd) : fd_(std::move(fd)) {}
  Status Index(const ArchiveLimits& limits);
  Result<const Member*> Regular(const std::string& name) const;

  UniqueFd fd_;  // the archive (or its inflated spool), read with pread only
  std::map<std::string, Member, std::less<>> members_;
};

// Writes a tar (ustar headers, PAX records for long names and large sizes) to an fd, as a stream.
// Entries get mode 0644 (directories 0755), owner 0:0 and mtime 0, so the same content gives the
// same archive. Not thread-safe.
class TarWriter {
 public:
  explicit TarWriter(int fd) : fd_(fd) {}
  // A directory entry ("blobs/").
  Status AddDirectory(const std::string& name);
  // A file of `size` bytes: the header now, then exactly `size` bytes through Write, then End.
  Status BeginFile(const std::string& name, uint64_t size);
  Status Write(const char* data, size_t n);
  Status EndFile();
  // A whole file in one call.
  Status AddFile(const std::string& name, std::string_view bytes);
  // The end-of-archive marker.
  Status Finish();

 private:
  Status Header(const std::string& name, uint64_t size, char type);
  int fd_;
  uint64_t left_ = 0;     // bytes the current file still needs
  uint64_t written_ = 0;  // of the current file
};

}  // namespace hoist::transport

// A tar archive opened for random access to its members' bytes, for the archive transports.
//
// Open reads the archive once from start to end (through unpack::TarReader, inflating a gzip or
// zstd tarball as its magic bytes announce) and records each member: type, size, where its data
// starts and the sha256 of its data. Afterwards a member's bytes are read back with pread by
// their offset. A plain tar in a regular file is read in place; anything else (stdin "-", a
// pipe, a compressed tarball) is copied while it is indexed into a private spool file: an
// unnamed (O_TMPFILE) file in `spool_dir`, never visible and gone when the index is destroyed.
// A file read in place that changes afterwards is caught by the digests: ReadAll checks them, and
// the readers of Read (a copy's destination) verify what they get.
//
// Member names are never used as host paths: they are only keys. Find takes the names an
// archive's own documents give (manifest.json, index.json, blobs/sha256/<hex>) and refuses
// absolute names and ".." components, and finds only regular files (a symlink or hardlink in the
// place of a file the archive's documents point at is refused). Open refuses an archive in which
// a name other than a directory's appears twice, or that holds a sparse file: neither can be read
// back as one range of the archive.
//
// Used by every archive transport: docker-archive, oci-archive and load.
// Thread-safe after Open (Read uses pread only).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "hoist/digest.h"
#include "hoist/status.h"
#include "unpack/decompress.h"
#include "unpack/tar_entry.h"

namespace hoist::transport {

struct TarMember {
  std::string name;  // as normalized by Open: no "./" prefixes, no trailing '/'
  unpack::EntryType type = unpack::EntryType::kRegular;
  uint64_t offset = 0;  // of its data in the (inflated) archive
  uint64_t size = 0;
  Digest digest;  // sha256 of its data (regular files)
  // What the data's first bytes announce (regular files).
  unpack::Compression compression = unpack::Compression::kNone;
};

struct TarIndexLimits {
  uint64_t max_members = 100'000;
  uint64_t max_bytes = uint64_t{128} << 30;  // the inflated archive
};

class TarIndex {
 public:
  // Indexes the archive at `path` ("-": stdin). Errors: InvalidArgument when `path` is a
  // directory; the archive's own (DataLoss: a corrupt tar or compressed stream, a name given
  // twice, a sparse file; ResourceExhausted: a limit); the file system's (opening `path`,
  // writing the spool file).
  static Result<std::unique_ptr<TarIndex>> Open(const std::string& path,
                                                const std::string& spool_dir,
                                                const TarIndexLimits& limits = {});

  // The regular file `name` (a relative name from the archive's documents; "./" prefixes are
  // ignored). InvalidArgument for an absolute name or one with a ".." component, NotFound when
  // there is no such member, DataLoss for a member that is not a regular file.
  Result<const TarMember*> Find(std::string_view name) const;
  // The member `name` of any type (a directory, a link, ...) as Find normalizes it; nullptr when
  // there is none.
  const TarMember* Lookup(std::string_view name) const;

  // Passes the bytes of `m` from byte `from` on to `sink`, in chunks of at most 1 MiB. DataLoss
  // if the file ends early (it was changed under us).
  Status Read(const TarMember& m, uint64_t from,
              const std::function<Status(const char*, size_t)>& sink) const;
  // All of `m`'s bytes, checked against m.digest (DataLoss); ResourceExhausted when it is
  // larger than `max_bytes`.
  Result<std::string> ReadAll(const TarMember& m, size_t max_bytes) const;

  // True when the archive was copied to a spool file (stdin, a pipe, a compressed tarball).
  bool spooled() const { return spooled_; }

 private:
  TarIndex() = default;
  friend class TarIndexer;

  UniqueFd fd_;  // the archive, or its spool copy
  bool spooled_ = false;
  std::map<std::string, TarMember, std::less<>> members_;
};

// A private, unnamed file in `dir` for reading and writing (O_TMPFILE; where the file system
// lacks it, a named file removed at once), gone when closed.
Result<UniqueFd> OpenSpoolFile(const std::string& dir);

// `name` without "./" prefixes, "." components, repeated and trailing '/'. Empty for a name
// that is absolute or has a ".." component (it can never be looked up).
std::string NormalizeMemberName(std::string_view name);

}  // namespace hoist::transport

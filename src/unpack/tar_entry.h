// One entry of a tar stream, as the reader hands it to the extractor. Every field comes from a
// hostile archive: the reader checks the format, the extractor checks the meaning.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hoist::unpack {

enum class EntryType {
  kRegular,    // '0', '\0', '7' (contiguous)
  kHardlink,   // '1': linkname names an earlier entry (of this layer, or a lower one)
  kSymlink,    // '2'
  kCharDevice, // '3'
  kBlockDevice,// '4'
  kDirectory,  // '5'
  kFifo,       // '6'
};

struct TarEntry {
  EntryType type = EntryType::kRegular;
  // As in the archive after PAX/GNU long-name processing: relative or absolute, may contain
  // "..", "./", repeated '/', a trailing '/'. The extractor resolves it inside the root.
  std::string path;
  std::string linkname;  // symlink target or hardlink source, as in the archive
  uint32_t mode = 0;     // permission bits incl. setuid/setgid/sticky (07777); type bits removed
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  // The file's logical size: the number of bytes the extractor receives for a regular file.
  // For sparse files the reader expands holes to zeros, so this is the real (expanded) size.
  int64_t size = 0;
  // Extended attributes from PAX SCHILY.xattr.<name> records (name without the prefix).
  std::vector<std::pair<std::string, std::string>> xattrs;
};

}  // namespace hoist::unpack

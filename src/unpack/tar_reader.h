// A push-driven tar reader. The caller feeds the (already inflated) bytes of a layer in chunks
// of any size; the reader parses headers and hands entries and file contents to a TarHandler.
// It never blocks, never pulls and keeps at most one 512-byte block plus one extension record
// (bounded by TarLimits::max_header_bytes) in memory; file data is passed through as slices of
// the fed chunks.
//
// Formats: v7, ustar (name + prefix, also the star variant), GNU (long names 'L', long links
// 'K', base-256 numbers, old sparse 'S' with extension blocks) and PAX ('x' records: path,
// linkpath, size, uid, gid, mtime, SCHILY.xattr.*, LIBARCHIVE.xattr.*, GNU.sparse.* for sparse
// formats 0.0, 0.1 and 1.0; 'g' global records are validated and ignored). An empty PAX value
// deletes its keyword (POSIX), SCHILY.xattr.* and LIBARCHIVE.xattr.* included. Sparse files
// are delivered expanded: data through OnData, holes through OnHole.
//
// Entry types: '0', '\0', '7' and 'S' are regular files, '1' hardlink, '2' symlink, '3'/'4'
// devices, '5' directory, '6' fifo. Any other type is refused. Only regular files carry data;
// for the other types the size field is ignored and no data section is read (as Go's
// archive/tar, which wrote and reads most container layers, does). A regular entry whose name
// ends in '/' is a directory (old tars); its data section, if any, is skipped.
//
// Every error from the archive is DataLoss ("tar entry 12 \"usr/bin/x\": bad checksum"), a
// broken limit is ResourceExhausted; an error from the handler is returned unchanged. After
// the first error the reader is stuck: every later call returns that error.
//
// Not thread-safe; one reader per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hoist/status.h"
#include "unpack/tar_entry.h"

namespace hoist::unpack {

struct TarLimits {
  // A PAX or GNU long-name/long-link record larger than this is refused, as are all the
  // extension records of one entry together, an old GNU sparse map (extension blocks) or a
  // PAX 1.0 sparse map larger than this.
  size_t max_header_bytes = 1 << 20;
  // Entries in one layer.
  uint64_t max_entries = 10'000'000;
  // Logical size of one file (the expanded size of a sparse file too).
  uint64_t max_file_size = 1ULL << 40;
  // Zero bytes tolerated after the end-of-archive marker or the last entry. The reader does not
  // look at anything after the end-of-archive marker (Feed returns at once, whatever follows,
  // as GNU tar ignores it), so no input can exceed this bound.
  uint64_t max_trailing_zero_bytes = 1 << 20;
};

// Receives the contents of the archive, in order: for each entry OnEntry, then (regular files
// only) OnData and OnHole calls totalling exactly entry.size bytes, each with n > 0, then
// OnEntryEnd. A non-OK status stops the reader and is returned to the caller of Feed unchanged.
class TarHandler {
 public:
  virtual ~TarHandler() = default;
  virtual Status OnEntry(const TarEntry& e) = 0;
  virtual Status OnData(const char* data, size_t n) = 0;
  // A hole of a sparse file: n bytes that read as zeros. The default passes n zero bytes to
  // OnData; a handler that can leave holes unallocated overrides it.
  virtual Status OnHole(uint64_t n);
  virtual Status OnEntryEnd() = 0;
};

class TarReader {
 public:
  // `handler` is not owned and must outlive the reader.
  explicit TarReader(TarHandler* handler, TarLimits limits = {});

  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Consumes n bytes (n may be 0). Calls the handler for everything the bytes complete.
  Status Feed(const char* data, size_t n);

  // End of input. OK if the archive ended properly (end-of-archive marker, or a part of it), or
  // right after the last entry's data (with or without its padding). DataLoss ("... truncated
  // ...") if the stream stopped inside a header, inside file data, inside a PAX/GNU extension
  // record, or after extension records that no entry followed.
  Status Finish();

  // Entries handed to OnEntry so far.
  uint64_t entries() const { return entries_; }

 private:
  enum class State {
    kHeader,      // expecting a header block
    kExtension,   // collecting the data of an 'x', 'g', 'L' or 'K' record into ext_
    kData,        // passing regular-file data to the handler
    kSparseExt,   // expecting an old GNU sparse extension block
    kSparseMap,   // collecting the blocks of a PAX 1.0 sparse map into ext_
    kSparseData,  // passing sparse-file data (segments and holes) to the handler
    kSkip,        // skipping a data section nobody reads
    kPadding,     // skipping the padding up to the next block boundary
    kEnd,         // after the end-of-archive marker: nothing matters any more
    kFailed,      // error_ holds the first error
  };
  struct Segment {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  // Everything the extension records ('x', 'L', 'K') say about the next entry.
  struct Pending {
    bool any = false;    // an extension record was seen since the last entry
    uint64_t bytes = 0;  // their total size
    std::optional<std::string> long_name, long_link, path, linkpath;
    std::optional<int64_t> size, uid, gid;
    std::optional<std::pair<int64_t, int64_t>> mtime;  // seconds, nanoseconds
    std::vector<std::pair<std::string, std::string>> xattrs;
    std::map<std::string, size_t> xattr_index;  // name -> position in xattrs
    // GNU.sparse.* records.
    bool sparse = false;  // any GNU.sparse.* record
    std::optional<std::string> sparse_major, sparse_minor, sparse_name;
    std::optional<int64_t> sparse_size, sparse_realsize, sparse_numblocks;
    bool sparse_has_map = false;      // GNU.sparse.map (0.1)
    std::vector<int64_t> sparse_map;  // offset, length, ... from .map or .offset/.numbytes
  };

  Status Consume(const char* p, size_t n);
  Status OnBlock(const char* block);
  Status ProcessHeader(const char* h);
  Status StartExtension(const char* h, char type);
  Status FinishExtension();
  Status ParsePax(std::string_view data, Pending* out);
  Status ApplyPaxRecord(std::string_view key, std::string_view value, Pending* out);
  Status StartEntry(const char* h, char type);
  Status ProcessSparseExtBlock(const char* block);
  Status ProcessSparseMapBlock(const char* block);
  Status StartSparseData();
  Status EndEntry();
  // "tar entry N \"name\"", naming the entry being read.
  std::string Context() const;
  Status Error(std::string_view what) const;

  TarHandler* handler_;
  TarLimits limits_;
  State state_ = State::kHeader;
  Status error_;

  char block_[512];       // a block being assembled from several chunks
  size_t block_len_ = 0;  // bytes in block_
  int zero_blocks_ = 0;   // consecutive zero blocks where a header was expected

  uint64_t entries_ = 0;
  uint64_t cur_index_ = 0;  // number (from 1) of the entry being read, for messages
  std::string cur_name_;    // its name, for messages

  Pending pending_;
  char ext_type_ = 0;  // 'x', 'g', 'L' or 'K' while in kExtension
  std::string ext_;    // an extension record, or a PAX 1.0 sparse map

  uint64_t remaining_ = 0;  // bytes left in the current data section (kData, kSkip, kPadding)
  uint64_t padding_ = 0;    // padding after the current data section

  // Sparse files.
  TarEntry entry_;  // the entry, held back until its sparse map is complete
  std::vector<Segment> segments_;
  uint64_t sparse_stored_ = 0;     // data bytes in the archive (after a PAX 1.0 map)
  uint64_t sparse_real_ = 0;       // expanded size
  uint64_t sparse_map_bytes_ = 0;  // old GNU extension blocks read so far
  // PAX 1.0 map parsing: the next unparsed byte of ext_, the number of segments announced
  // (-1: not read yet), and the offset of a segment whose length is still to come.
  size_t map_scan_ = 0;
  int64_t map_count_ = -1;
  std::optional<uint64_t> map_offset_;
  size_t seg_index_ = 0;   // next segment to start
  uint64_t seg_left_ = 0;  // data bytes left in the current segment
  uint64_t pos_ = 0;       // logical bytes delivered
};

}  // namespace hoist::unpack

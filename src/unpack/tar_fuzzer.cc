// Fuzz target for TarReader. The first input byte seeds the chunk sizes; the rest is fed to a
// reader whose handler checks the reader's contract and aborts when it is broken:
//   - OnEntry, OnData*, OnEntryEnd in that order, never nested;
//   - OnData only for regular files, never empty, totalling exactly entry.size bytes;
//   - entries() equals the number of OnEntry calls;
//   - Finish is OK only between entries; errors are DataLoss or ResourceExhausted and sticky.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "unpack/tar_reader.h"

namespace hoist::unpack {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tar_fuzzer: broken invariant: %s\n", what);
    std::abort();
  }
}

class CheckingHandler : public TarHandler {
 public:
  Status OnEntry(const TarEntry& e) override {
    Check(!open_, "OnEntry inside an entry");
    Check(e.size >= 0, "negative size");
    Check(e.type == EntryType::kRegular || e.size == 0, "size on a non-regular entry");
    Check((e.mode & ~07777u) == 0, "mode has type bits");
    Check(e.mtime_nsec >= 0 && e.mtime_nsec < 1'000'000'000, "nanoseconds out of range");
    Check(e.path.find('\0') == std::string::npos, "NUL in path");
    Check(e.linkname.find('\0') == std::string::npos, "NUL in linkname");
    open_ = true;
    want_ = static_cast<uint64_t>(e.size);
    got_ = 0;
    ++entries_;
    return OkStatus();
  }
  Status OnData(const char* data, size_t n) override {
    Check(open_, "OnData outside an entry");
    Check(n > 0, "empty OnData");
    Check(n <= want_ - got_, "more data than the entry's size");
    // Touch both ends so that a sanitizer sees a bad slice.
    volatile char first = data[0], last = data[n - 1];
    (void)first;
    (void)last;
    got_ += n;
    return OkStatus();
  }
  Status OnEntryEnd() override {
    Check(open_, "OnEntryEnd outside an entry");
    Check(got_ == want_, "data does not add up to the entry's size");
    open_ = false;
    return OkStatus();
  }

  bool open() const { return open_; }
  uint64_t entries() const { return entries_; }

 private:
  bool open_ = false;
  uint64_t want_ = 0, got_ = 0, entries_ = 0;
};

bool ArchiveError(const Status& s) {
  return s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kResourceExhausted;
}

}  // namespace
}  // namespace hoist::unpack

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hoist::unpack;
  if (size == 0) return 0;
  uint32_t seed = data[0];
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;

  TarLimits limits;
  limits.max_file_size = 1 << 24;  // bounds the zeros a sparse map can ask for
  limits.max_header_bytes = 1 << 16;
  CheckingHandler handler;
  TarReader reader(&handler, limits);
  hoist::Status s;
  size_t off = 0;
  while (off < n && s.ok()) {
    seed = seed * 1103515245u + 12345u;
    size_t chunk = (seed >> 16) % 4 == 0 ? 1 + (seed >> 8) % 7 : 1 + (seed >> 12) % 1500;
    if (chunk > n - off) chunk = n - off;
    s = reader.Feed(p + off, chunk);
    off += chunk;
  }
  Check(reader.entries() == handler.entries(), "entries() differs from OnEntry calls");
  if (s.ok()) {
    hoist::Status f = reader.Finish();
    if (f.ok()) {
      Check(!handler.open(), "Finish is OK inside an entry");
    } else {
      Check(f.code() == hoist::StatusCode::kDataLoss, "Finish error is not DataLoss");
    }
  } else {
    Check(ArchiveError(s), "unexpected error code");
    Check(!s.message().empty(), "error without a message");
    Check(reader.Feed(p, n) == s, "error is not sticky");
    Check(reader.Finish() == s, "Finish forgets the error");
  }
  return 0;
}

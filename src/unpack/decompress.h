// Streaming, push-driven decompression of layer blobs: gzip (isa-l's igzip), zstd, or none.
//
// A Decompressor is fed the compressed bytes of one layer in chunks of any size, as they come
// off the network, and passes the decompressed bytes on to a sink as they become available. It
// never blocks and never pulls. Its memory is bounded whatever the size of the layer: one
// 256 KiB output buffer plus the library's state (about 100 KiB for gzip; for zstd the frame's
// window, which the frame header declares and which is capped: 32 MiB unless the caller allows
// more).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "hoist/status.h"

struct inflate_state;     // isa-l
struct isal_gzip_header;  // isa-l
struct ZSTD_DCtx_s;       // zstd

namespace hoist::unpack {

enum class Compression { kNone, kGzip, kZstd };

// "none", "gzip" or "zstd".
std::string_view CompressionName(Compression compression);

// The compression a stream's first bytes announce: gzip (1f 8b), zstd (a frame, 28 b5 2f fd, or
// a skippable frame, 5? 2a 4d 18); kNone for anything else, including too few bytes to tell.
Compression DetectCompression(std::string_view first_bytes);

// The compression a layer media type declares: OCI "...layer.v1.tar+gzip" / "+zstd" / plain
// "tar" (and the nondistributable variants), Docker "...rootfs.diff.tar.gzip" (and the foreign
// variant), "...diff.tar.zstd". Case and parameters (";...") are ignored. Unknown → kNone.
Compression CompressionOfMediaType(std::string_view media_type);

// 32 MiB: the largest window of the zstd encoder in containers/image, buildkit and containerd
// (at their best compression level) and of `zstd -20`.
inline constexpr uint64_t kDefaultMaxZstdWindow = uint64_t{32} << 20;

// Decompresses one stream, pushed in chunks.
//
// The compression is detected from the stream's first 4 bytes (they are buffered until 4 have
// arrived or Finish is called), so a media type that lies about the compression does no harm;
// `declared` only serves warning() when the two disagree.
//
// Errors (all sticky: once a call failed, every later call returns the same status):
//   DataLoss           corrupt data, a bad gzip CRC32/ISIZE, a truncated stream (at Finish;
//                      a stream of 1 to 3 bytes that begins like a gzip or zstd magic number
//                      is a truncated one; an empty stream is an empty uncompressed one),
//                      anything after the last gzip member except zero bytes (padding).
//   ResourceExhausted  more than max_output decompressed bytes ("layer exceeds N bytes
//                      uncompressed"), checked before the sink sees them, so the sink never
//                      receives more than max_output bytes; a zstd frame asking for a window
//                      larger than max_zstd_window (rounded down to a power of two).
//   any sink error     returned as is; nothing more is decompressed.
//
// Multi-member gzip and multi-frame zstd streams are decompressed in full. Not thread-safe;
// one stream per object.
class Decompressor {
 public:
  // Receives decompressed bytes, at most 1 MiB per call, in order. The pointer is valid only
  // during the call. A non-OK status stops the decompressor and is returned by Feed/Finish.
  using Sink = std::function<Status(const char* data, size_t n)>;

  // max_zstd_window: the largest window a zstd frame may ask for. The decoder holds the whole
  // window in memory, so this is what one zstd stream may cost: zstd levels up to 19 and the
  // Go encoder's default level use at most 8 MiB, its better and best levels 16 and 32 MiB,
  // `zstd --long` 128 MiB.
  Decompressor(Sink sink, uint64_t max_output, Compression declared = Compression::kNone,
               uint64_t max_zstd_window = kDefaultMaxZstdWindow);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Decompresses `n` more bytes of the stream (n may be 0), passing all output that can be
  // produced from them to the sink before returning.
  Status Feed(const char* data, size_t n);
  // Declares the end of the stream: checks that it ended cleanly (complete gzip member with a
  // verified trailer, complete zstd frame). Feed may not be called afterwards.
  Status Finish();

  // The compression detected from the stream; kNone until 4 bytes (or Finish) were seen.
  Compression detected() const { return detected_; }
  // Decompressed bytes handed to the sink so far.
  uint64_t total_out() const { return total_out_; }
  // Empty, or a one-line note that the declared compression differs from the detected one
  // (e.g. "media type declares gzip, stream is zstd"). Set once the compression is detected.
  const std::string& warning() const { return warning_; }

 private:
  enum class GzipPhase { kHeader, kBody, kBetweenMembers, kPadding };

  struct InflateStateDeleter {
    void operator()(inflate_state* state) const;
  };
  struct ZstdDeleter {
    void operator()(ZSTD_DCtx_s* dctx) const;
  };

  Status FeedImpl(const char* data, size_t n);
  Status FinishImpl();
  // Fixes detected_ from `first_bytes` and sets up the matching decoder.
  Status Start(std::string_view first_bytes);
  // Pushes stream bytes (after detection) through the detected decoder.
  Status Process(const char* data, size_t n);
  Status ProcessNone(const char* data, size_t n);
  Status ProcessGzip(const char* data, size_t n);
  Status ProcessZstd(const char* data, size_t n);
  // Passes n bytes of output to the sink after checking the cap.
  Status Emit(const char* data, size_t n);
  // Records `status` as the sticky failure (if it is one) and returns it.
  Status Fail(Status status);

  Sink sink_;
  const uint64_t max_output_;
  const Compression declared_;
  const int zstd_window_log_;
  Compression detected_ = Compression::kNone;
  bool started_ = false;   // detection done, decoder set up
  bool finished_ = false;  // Finish was called
  Status failure_;         // the first error; every later call returns it
  char head_[4] = {};      // the first bytes, until 4 have arrived
  size_t head_len_ = 0;
  uint64_t total_out_ = 0;
  std::string warning_;

  // Output buffer for gzip and zstd (not used for kNone, which passes input through).
  std::unique_ptr<char[]> out_;
  // gzip: isa-l's state, the header being parsed (persistent, so a header split across Feed
  // calls is parsed correctly), and where in the stream we are.
  std::unique_ptr<inflate_state, InflateStateDeleter> inflate_;
  std::unique_ptr<::isal_gzip_header> gzip_header_;
  GzipPhase gzip_phase_ = GzipPhase::kHeader;
  // zstd: the stream context, and whether the last frame seen is complete.
  std::unique_ptr<ZSTD_DCtx_s, ZstdDeleter> zstd_;
  bool zstd_frame_complete_ = false;
};

}  // namespace hoist::unpack

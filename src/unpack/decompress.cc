#include "unpack/decompress.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::unpack {
namespace {

// Size of the output buffer of gzip and zstd, and the largest chunk handed to the sink.
constexpr size_t kOutputBufferSize = size_t{256} * 1024;
constexpr size_t kMaxSinkChunk = size_t{1024} * 1024;
static_assert(kOutputBufferSize <= kMaxSinkChunk);
// isa-l counts input in uint32_t; larger Feed calls are cut into pieces of this size.
constexpr size_t kMaxInflateInput = size_t{1} << 30;
// zstd's own bounds of a window's base-2 logarithm (ZSTD_WINDOWLOG_MIN / _MAX on 64 bits).
constexpr int kZstdWindowLogMin = 10;
constexpr int kZstdWindowLogMax = 31;

// The largest window log whose window fits in `bytes`, within zstd's bounds.
int WindowLogWithin(uint64_t bytes) {
  int log = kZstdWindowLogMin;
  while (log < kZstdWindowLogMax && (uint64_t{1} << (log + 1)) <= bytes) ++log;
  return log;
}
// Reserved bits of the gzip FLG byte (RFC 1952: must be zero).
constexpr int kGzipReservedFlags = 0xe0;

std::string IsalErrorName(int code) {
  switch (code) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid deflate distance";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unsupported gzip compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "checksum mismatch";
    case ISAL_NEED_DICT:
      return "preset dictionary required";
    default:
      return "igzip error " + std::to_string(code);
  }
}

bool AllZero(const uint8_t* data, size_t n) {
  return n == 0 || (data[0] == 0 && std::memcmp(data, data + 1, n - 1) == 0);
}

}  // namespace

std::string_view CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

Compression DetectCompression(std::string_view first_bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(first_bytes.data());
  size_t n = first_bytes.size();
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return Compression::kGzip;
  if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
    return Compression::kZstd;
  }
  // A skippable frame (magic 0x184D2A50..0x184D2A5F, little endian) may open a zstd stream.
  if (n >= 4 && (b[0] & 0xf0) == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18) {
    return Compression::kZstd;
  }
  return Compression::kNone;
}

Compression CompressionOfMediaType(std::string_view media_type) {
  std::string type = ToLower(TrimSpace(media_type.substr(0, media_type.find(';'))));
  auto ends_with = [&type](std::string_view suffix) { return type.ends_with(suffix); };
  // OCI: application/vnd.oci.image.layer[.nondistributable].v1.tar[+gzip|+zstd]
  // Docker: application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip|.zstd]
  if (ends_with("+gzip") || ends_with(".gzip") || ends_with("/gzip") || ends_with("x-gzip")) {
    return Compression::kGzip;
  }
  if (ends_with("+zstd") || ends_with(".zstd") || ends_with("/zstd")) return Compression::kZstd;
  return Compression::kNone;
}

void Decompressor::InflateStateDeleter::operator()(inflate_state* state) const { delete state; }

void Decompressor::ZstdDeleter::operator()(ZSTD_DCtx_s* dctx) const { ZSTD_freeDStream(dctx); }

Decompressor::Decompressor(Sink sink, uint64_t max_output, Compression declared,
                           uint64_t max_zstd_window)
    : sink_(std::move(sink)),
      max_output_(max_output),
      declared_(declared),
      zstd_window_log_(WindowLogWithin(max_zstd_window)) {}

Decompressor::~Decompressor() = default;

Status Decompressor::Fail(Status status) {
  if (!status.ok() && failure_.ok()) failure_ = status;
  return status;
}

Status Decompressor::Feed(const char* data, size_t n) {
  if (!failure_.ok()) return failure_;
  if (finished_) return FailedPreconditionError("decompressor fed after Finish");
  return Fail(FeedImpl(data, n));
}

Status Decompressor::Finish() {
  if (!failure_.ok()) return failure_;
  if (finished_) return FailedPreconditionError("decompressor finished twice");
  finished_ = true;
  return Fail(FinishImpl());
}

Status Decompressor::FeedImpl(const char* data, size_t n) {
  if (started_) return Process(data, n);
  if (head_len_ == 0 && n >= sizeof(head_)) {
    RETURN_IF_ERROR(Start(std::string_view(data, n)));
    return Process(data, n);
  }
  size_t take = std::min(n, sizeof(head_) - head_len_);
  if (take > 0) std::memcpy(head_ + head_len_, data, take);
  head_len_ += take;
  if (head_len_ < sizeof(head_)) return OkStatus();
  RETURN_IF_ERROR(Start(std::string_view(head_, head_len_)));
  RETURN_IF_ERROR(Process(head_, head_len_));
  return Process(data + take, n - take);
}

Status Decompressor::FinishImpl() {
  if (!started_) {
    // Fewer than 4 bytes: a beginning of a gzip or zstd magic number is a truncated stream.
    std::string_view head(head_, head_len_);
    if (!head.empty() && (std::string_view("\x1f\x8b", 2).starts_with(head) ||
                          std::string_view("\x28\xb5\x2f\xfd", 4).starts_with(head))) {
      return DataLossError("truncated compressed stream (" + std::to_string(head_len_) + " bytes)");
    }
    RETURN_IF_ERROR(Start(std::string_view(head_, head_len_)));
    RETURN_IF_ERROR(Process(head_, head_len_));
  }
  switch (detected_) {
    case Compression::kNone:
      return OkStatus();
    case Compression::kGzip:
      if (gzip_phase_ == GzipPhase::kHeader || gzip_phase_ == GzipPhase::kBody) {
        return DataLossError("truncated gzip stream (after " + std::to_string(total_out_) +
                             " decompressed bytes)");
      }
      return OkStatus();
    case Compression::kZstd:
      if (!zstd_frame_complete_) {
        return DataLossError("truncated zstd stream (after " + std::to_string(total_out_) +
                             " decompressed bytes)");
      }
      return OkStatus();
  }
  return InternalError("unknown compression");
}

Status Decompressor::Start(std::string_view first_bytes) {
  started_ = true;
  detected_ = DetectCompression(first_bytes);
  if (detected_ != declared_) {
    warning_ = "media type declares " + std::string(CompressionName(declared_)) + ", stream is " +
               std::string(CompressionName(detected_));
  }
  switch (detected_) {
    case Compression::kNone:
      return OkStatus();
    case Compression::kGzip:
      out_ = std::make_unique_for_overwrite<char[]>(kOutputBufferSize);
      inflate_.reset(new inflate_state);
      isal_inflate_init(inflate_.get());
      inflate_->crc_flag = ISAL_GZIP;  // kept by isal_inflate_reset, so set once
      gzip_header_ = std::make_unique<isal_gzip_header>();
      isal_gzip_header_init(gzip_header_.get());
      gzip_phase_ = GzipPhase::kHeader;
      return OkStatus();
    case Compression::kZstd: {
      out_ = std::make_unique_for_overwrite<char[]>(kOutputBufferSize);
      zstd_.reset(ZSTD_createDStream());
      if (zstd_ == nullptr) return ResourceExhaustedError("cannot allocate a zstd decoder");
      size_t rc = ZSTD_DCtx_setParameter(zstd_.get(), ZSTD_d_windowLogMax, zstd_window_log_);
      if (ZSTD_isError(rc)) {
        return InternalError(std::string("zstd: ") + ZSTD_getErrorName(rc));
      }
      return OkStatus();
    }
  }
  return InternalError("unknown compression");
}

Status Decompressor::Process(const char* data, size_t n) {
  switch (detected_) {
    case Compression::kNone:
      return ProcessNone(data, n);
    case Compression::kGzip:
      while (n > 0) {
        size_t piece = std::min(n, kMaxInflateInput);
        RETURN_IF_ERROR(ProcessGzip(data, piece));
        data += piece;
        n -= piece;
      }
      return OkStatus();
    case Compression::kZstd:
      return ProcessZstd(data, n);
  }
  return InternalError("unknown compression");
}

Status Decompressor::Emit(const char* data, size_t n) {
  if (n > max_output_ - total_out_) {
    return ResourceExhaustedError("layer exceeds " + std::to_string(max_output_) +
                                  " bytes uncompressed");
  }
  total_out_ += n;
  return sink_(data, n);
}

Status Decompressor::ProcessNone(const char* data, size_t n) {
  while (n > 0) {
    size_t piece = std::min(n, kMaxSinkChunk);
    RETURN_IF_ERROR(Emit(data, piece));
    data += piece;
    n -= piece;
  }
  return OkStatus();
}

// Walks the gzip phases: header (parsed by isa-l into a persistent header record), body
// (deflate data and the CRC32/ISIZE trailer, both checked by isa-l), then either the next
// member or zero padding up to the end. n fits in uint32_t.
// The header is parsed here rather than by isal_inflate because isal_inflate starts from a fresh
// header record on each call, and so misreads optional header fields (FHCRC, FNAME after FEXTRA,
// ...) that are split across calls.
Status Decompressor::ProcessGzip(const char* data, size_t n) {
  inflate_state* state = inflate_.get();
  state->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data));
  state->avail_in = static_cast<uint32_t>(n);
  int calls_without_progress = 0;
  for (;;) {
    switch (gzip_phase_) {
      case GzipPhase::kPadding:
        if (!AllZero(state->next_in, state->avail_in)) {
          return DataLossError("unexpected data after zero padding that follows the gzip stream");
        }
        state->avail_in = 0;
        return OkStatus();

      case GzipPhase::kBetweenMembers:
        if (state->avail_in == 0) return OkStatus();
        if (*state->next_in == 0) {
          gzip_phase_ = GzipPhase::kPadding;
          break;
        }
        if (*state->next_in != 0x1f) {
          return DataLossError("unexpected data after the end of the gzip stream");
        }
        isal_inflate_reset(state);
        isal_gzip_header_init(gzip_header_.get());
        gzip_phase_ = GzipPhase::kHeader;
        break;

      case GzipPhase::kHeader: {
        int ret = isal_read_gzip_header(state, gzip_header_.get());
        if (ret == ISAL_END_INPUT) return OkStatus();  // all input consumed, header unfinished
        if (ret != ISAL_DECOMP_OK) return DataLossError("gzip: " + IsalErrorName(ret));
        if ((gzip_header_->flags & kGzipReservedFlags) != 0) {
          return DataLossError("gzip: reserved header flags set");
        }
        gzip_phase_ = GzipPhase::kBody;
        break;
      }

      case GzipPhase::kBody: {
        uint32_t avail_in_before = state->avail_in;
        state->next_out = reinterpret_cast<uint8_t*>(out_.get());
        state->avail_out = kOutputBufferSize;
        int ret = isal_inflate(state);
        size_t produced = kOutputBufferSize - state->avail_out;
        if (ret < 0) {
          return DataLossError("gzip: " + IsalErrorName(ret) + " (after " +
                               std::to_string(total_out_ + produced) + " decompressed bytes)");
        }
        if (produced > 0) RETURN_IF_ERROR(Emit(out_.get(), produced));
        if (state->block_state == ISAL_BLOCK_FINISH) {
          gzip_phase_ = GzipPhase::kBetweenMembers;
        } else if (produced == kOutputBufferSize) {
          // The buffer is full: more output may be pending even without input.
        } else if (state->avail_in == 0) {
          return OkStatus();
        } else if (state->avail_in < avail_in_before || produced > 0) {
          calls_without_progress = 0;
        } else if (++calls_without_progress > 3) {
          return InternalError("gzip: decoder makes no progress");
        }
        break;
      }
    }
  }
}

// zstd decodes frame after frame; ZSTD_decompressStream returns 0 exactly when a frame is
// complete and fully flushed.
Status Decompressor::ProcessZstd(const char* data, size_t n) {
  ZSTD_inBuffer in{data, n, 0};
  // zstd itself fails a stream that makes no progress over several calls.
  bool output_pending = false;
  while (in.pos < in.size || output_pending) {
    ZSTD_outBuffer out{out_.get(), kOutputBufferSize, 0};
    size_t ret = ZSTD_decompressStream(zstd_.get(), &out, &in);
    if (ZSTD_isError(ret)) {
      if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge) {
        return ResourceExhaustedError(
            "zstd frame needs a window larger than " +
            std::to_string(uint64_t{1} << zstd_window_log_) +
            " bytes, the memory one layer may take to inflate (--max-zstd-window)");
      }
      return DataLossError(std::string("zstd: ") + ZSTD_getErrorName(ret) + " (after " +
                           std::to_string(total_out_ + out.pos) + " decompressed bytes)");
    }
    if (out.pos > 0) RETURN_IF_ERROR(Emit(out_.get(), out.pos));
    zstd_frame_complete_ = ret == 0;
    output_pending = ret != 0 && out.pos == out.size;
  }
  return OkStatus();
}

}  // namespace hoist::unpack

#include "unpack/decompress.h"

#include <sys/resource.h>
#include <zlib.h>
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hoist::unpack {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kNoCap = ~uint64_t{0};

// Text-like data (words from a small vocabulary, some random bytes), compressible about 3:1.
std::string MakeData(size_t size, uint32_t seed) {
  static const char* const kWords[] = {"layer", "tar",     "usr/",  "bin", "lib",    "etc/",  "\n",
                                       "root",  "0000644", "ustar", " ",   "\0\0\0", "x86_64"};
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(size + 16);
  while (out.size() < size) {
    uint32_t r = rng();
    if (r % 16 == 0) {
      out.push_back(static_cast<char>(r >> 8));
    } else {
      out.append(kWords[(r >> 8) % (sizeof(kWords) / sizeof(kWords[0]))]);
    }
  }
  out.resize(size);
  return out;
}

struct GzipOptions {
  int level = 6;
  bool header_fields = false;  // FNAME, FCOMMENT, FEXTRA and FHCRC
};

std::string Gzip(const std::string& data, GzipOptions options = {}) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, options.level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  gz_header header{};
  char name[] = "layer.tar";
  char comment[] = "a comment";
  unsigned char extra[] = {'h', 'o', 4, 0, 1, 2, 3, 4};
  if (options.header_fields) {
    header.name = reinterpret_cast<Bytef*>(name);
    header.comment = reinterpret_cast<Bytef*>(comment);
    header.extra = extra;
    header.extra_len = sizeof(extra);
    header.hcrc = 1;
    EXPECT_EQ(deflateSetHeader(&z, &header), Z_OK);
  }
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = data.size();
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = out.size();
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& data, int level = 3, bool checksum = false) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  ZSTD_freeCCtx(cctx);
  out.resize(n);
  return out;
}

struct Outcome {
  Status status;
  std::string output;
  Compression detected = Compression::kNone;
  std::string warning;
  size_t largest_chunk = 0;
};

// Feeds `input` in chunks of `chunk` bytes, then calls Finish; stops at the first error.
Outcome Decompress(const std::string& input, size_t chunk, uint64_t max_output = kNoCap,
                   Compression declared = Compression::kNone,
                   uint64_t max_zstd_window = kDefaultMaxZstdWindow) {
  Outcome outcome;
  Decompressor d(
      [&outcome](const char* data, size_t n) {
        outcome.output.append(data, n);
        outcome.largest_chunk = std::max(outcome.largest_chunk, n);
        return OkStatus();
      },
      max_output, declared, max_zstd_window);
  for (size_t pos = 0; pos < input.size() && outcome.status.ok(); pos += chunk) {
    outcome.status = d.Feed(input.data() + pos, std::min(chunk, input.size() - pos));
  }
  if (outcome.status.ok()) outcome.status = d.Finish();
  outcome.detected = d.detected();
  outcome.warning = d.warning();
  EXPECT_EQ(d.total_out(), outcome.output.size());
  return outcome;
}

TEST(DetectCompressionTest, MagicNumbers) {
  struct Case {
    std::string bytes;
    Compression want;
  };
  const Case cases[] = {
      {"", Compression::kNone},
      {"\x1f", Compression::kNone},
      {"\x1f\x8b", Compression::kGzip},
      {"\x1f\x8b\x08\x00", Compression::kGzip},
      {"\x8b\x1f\x08\x00", Compression::kNone},
      {"\x28\xb5\x2f", Compression::kNone},
      {"\x28\xb5\x2f\xfd", Compression::kZstd},
      {"\x50\x2a\x4d\x18", Compression::kZstd},  // skippable frame
      {"\x5f\x2a\x4d\x18", Compression::kZstd},
      {"\x60\x2a\x4d\x18", Compression::kNone},
      {"usr/", Compression::kNone},
      {std::string(4, '\0'), Compression::kNone},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(DetectCompression(c.bytes), c.want) << testing::PrintToString(c.bytes);
  }
}

TEST(CompressionOfMediaTypeTest, KnownTypes) {
  struct Case {
    const char* media_type;
    Compression want;
  };
  const Case cases[] = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
      {"Application/VND.OCI.Image.Layer.v1.Tar+GZIP; charset=binary", Compression::kGzip},
      {"application/octet-stream", Compression::kNone},
      {"", Compression::kNone},
  };
  for (const Case& c : cases)
    EXPECT_EQ(CompressionOfMediaType(c.media_type), c.want) << c.media_type;
}

// Round trips: every format, several levels, fed in chunks of several sizes.
struct RoundTripCase {
  const char* name;
  Compression compression;
  int level;
};

class RoundTripTest : public testing::TestWithParam<std::tuple<RoundTripCase, size_t>> {};

TEST_P(RoundTripTest, DecompressesToTheOriginal) {
  const auto& [c, chunk] = GetParam();
  // Larger than the output buffer and than the 1 MiB sink chunk.
  static const std::string data = MakeData(1536 * 1024 + 3, 1);
  std::string input = c.compression == Compression::kGzip   ? Gzip(data, {.level = c.level})
                      : c.compression == Compression::kZstd ? Zstd(data, c.level)
                                                            : data;
  Outcome got = Decompress(input, chunk == 0 ? input.size() : chunk, kNoCap, c.compression);
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  EXPECT_EQ(got.detected, c.compression);
  EXPECT_EQ(got.warning, "");
  EXPECT_LE(got.largest_chunk, size_t{1} << 20);
  ASSERT_EQ(got.output.size(), data.size());
  EXPECT_TRUE(got.output == data);
}

INSTANTIATE_TEST_SUITE_P(
    All, RoundTripTest,
    testing::Combine(testing::Values(RoundTripCase{"none", Compression::kNone, 0},
                                     RoundTripCase{"gzip0", Compression::kGzip, 0},
                                     RoundTripCase{"gzip1", Compression::kGzip, 1},
                                     RoundTripCase{"gzip6", Compression::kGzip, 6},
                                     RoundTripCase{"gzip9", Compression::kGzip, 9},
                                     RoundTripCase{"zstd1", Compression::kZstd, 1},
                                     RoundTripCase{"zstd12", Compression::kZstd, 12}),
                     testing::Values(size_t{1}, size_t{7}, size_t{4096}, size_t{0})),
    [](const auto& info) {
      size_t chunk = std::get<1>(info.param);
      return std::string(std::get<0>(info.param).name) + "_" +
             (chunk == 0 ? std::string("whole") : std::to_string(chunk));
    });

TEST(DecompressorTest, EmptyStreamIsEmptyPlainStream) {
  Outcome got = Decompress("", 1);
  EXPECT_TRUE(got.status.ok()) << got.status.ToString();
  EXPECT_EQ(got.detected, Compression::kNone);
  EXPECT_EQ(got.output, "");
}

TEST(DecompressorTest, ShortPlainStreams) {
  for (std::string s : {"a", "ab", "abc", "abcd", "\x1f\x1f"}) {
    Outcome got = Decompress(s, 1);
    EXPECT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.output, s);
  }
}

TEST(DecompressorTest, GzipHeaderFieldsInAnySplit) {
  std::string data = MakeData(100000, 2);
  std::string gz = Gzip(data, {.header_fields = true});
  ASSERT_EQ(gz[3] & 0x1e, 0x1e);  // FHCRC, FEXTRA, FNAME, FCOMMENT
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{11}, gz.size()}) {
    Outcome got = Decompress(gz, chunk);
    ASSERT_TRUE(got.status.ok()) << chunk << ": " << got.status.ToString();
    EXPECT_TRUE(got.output == data) << chunk;
  }
  // A wrong header CRC is refused.
  std::string bad = gz;
  size_t hcrc_at = 10 + 2 + 8 + sizeof("layer.tar") + sizeof("a comment");
  bad[hcrc_at] ^= 1;
  for (size_t chunk : {size_t{1}, bad.size()}) {
    Outcome got = Decompress(bad, chunk);
    EXPECT_EQ(got.status.code(), StatusCode::kDataLoss) << got.status.ToString();
  }
}

TEST(DecompressorTest, GzipReservedFlagsRefused) {
  std::string gz = Gzip("hello");
  gz[3] = static_cast<char>(gz[3] | 0x20);
  Outcome got = Decompress(gz, gz.size());
  EXPECT_EQ(got.status.code(), StatusCode::kDataLoss);
  EXPECT_THAT(got.status.message(), HasSubstr("reserved"));
}

TEST(DecompressorTest, MultiMemberGzip) {
  std::string a = MakeData(300000, 3), b = MakeData(5, 4), c = MakeData(700000, 5);
  std::string gz = Gzip(a, {.level = 1}) + Gzip(b) + Gzip("") + Gzip(c, {.level = 9});
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, gz.size()}) {
    Outcome got = Decompress(gz, chunk);
    ASSERT_TRUE(got.status.ok()) << chunk << ": " << got.status.ToString();
    EXPECT_TRUE(got.output == a + b + c) << chunk;
  }
}

TEST(DecompressorTest, MultiFrameZstd) {
  std::string a = MakeData(300000, 6), b = MakeData(700000, 7);
  std::string zs = Zstd(a) + Zstd("") + Zstd(b, 5, /*checksum=*/true);
  for (size_t chunk : {size_t{1}, size_t{4096}, zs.size()}) {
    Outcome got = Decompress(zs, chunk);
    ASSERT_TRUE(got.status.ok()) << chunk << ": " << got.status.ToString();
    EXPECT_TRUE(got.output == a + b) << chunk;
  }
}

TEST(DecompressorTest, GzipTrailingZeroPaddingAccepted) {
  std::string data = MakeData(50000, 8);
  for (size_t zeros : {1, 7, 512, 10240}) {
    std::string gz = Gzip(data) + std::string(zeros, '\0');
    for (size_t chunk : {size_t{1}, size_t{1000}, gz.size()}) {
      Outcome got = Decompress(gz, chunk);
      ASSERT_TRUE(got.status.ok()) << zeros << "/" << chunk << ": " << got.status.ToString();
      EXPECT_TRUE(got.output == data);
    }
  }
}

TEST(DecompressorTest, GzipTrailingGarbageRefused) {
  std::string gz = Gzip(MakeData(50000, 9));
  const std::string tails[] = {
      "x",
      "garbage",
      std::string(100, '\0') + "x",
      std::string("\x1f"),                                     // a truncated second member
      std::string("\x1f\x8b\x08"),                             // ditto
      std::string("\x1f\x8b\x07\x00") + std::string(20, 'a'),  // not deflate
      std::string("\x1f\x1f\x08\x00") + std::string(20, 'a'),  // bad magic
      std::string(1, '\0') + Gzip("more"),                     // a member after padding
  };
  for (const std::string& tail : tails) {
    std::string input = gz + tail;
    for (size_t chunk : {size_t{1}, input.size()}) {
      Outcome got = Decompress(input, chunk);
      EXPECT_EQ(got.status.code(), StatusCode::kDataLoss)
          << testing::PrintToString(tail) << " " << got.status.ToString();
    }
  }
}

TEST(DecompressorTest, EveryTruncationIsDataLoss) {
  std::string data = MakeData(20000, 10);
  const size_t empty_member = Gzip("").size();  // a complete stream on its own
  const std::string streams[] = {
      Gzip(data), Gzip(data, {.level = 0}),         Gzip(data, {.header_fields = true}),
      Zstd(data), Zstd(data, 3, /*checksum=*/true), Gzip("") + Gzip("x")};
  for (const std::string& stream : streams) {
    for (size_t len = 1; len < stream.size(); ++len) {
      if (len == empty_member && stream.size() < 100) continue;
      std::string prefix = stream.substr(0, len);
      Outcome whole = Decompress(prefix, prefix.size());
      ASSERT_EQ(whole.status.code(), StatusCode::kDataLoss)
          << "prefix " << len << " of " << stream.size() << ": " << whole.status.ToString();
    }
    // Byte by byte on a sample of lengths (all of them would be slow).
    for (size_t len = 1; len < stream.size(); len += 97) {
      Outcome bytewise = Decompress(stream.substr(0, len), 1);
      ASSERT_EQ(bytewise.status.code(), StatusCode::kDataLoss) << len;
    }
  }
}

TEST(DecompressorTest, GzipTrailerMismatchIsDataLoss) {
  std::string data = MakeData(100000, 11);
  std::string gz = Gzip(data);
  for (size_t from_end : {8, 5, 4, 1}) {  // CRC32 bytes, then ISIZE bytes
    std::string bad = gz;
    bad[bad.size() - from_end] ^= 0x40;
    for (size_t chunk : {size_t{1}, size_t{4096}, bad.size()}) {
      Outcome got = Decompress(bad, chunk);
      EXPECT_EQ(got.status.code(), StatusCode::kDataLoss) << from_end << "/" << chunk;
      EXPECT_THAT(got.status.message(), HasSubstr("checksum"));
    }
  }
}

TEST(DecompressorTest, ZstdChecksumMismatchIsDataLoss) {
  std::string zs = Zstd(MakeData(100000, 12), 3, /*checksum=*/true);
  zs[zs.size() - 1] ^= 0x40;
  Outcome got = Decompress(zs, zs.size());
  EXPECT_EQ(got.status.code(), StatusCode::kDataLoss) << got.status.ToString();
}

TEST(DecompressorTest, DeclaredCompressionIsOnlyAdvice) {
  std::string data = MakeData(200000, 13);
  struct Case {
    std::string input;
    Compression declared;
    Compression actual;
  };
  const Case cases[] = {
      {Zstd(data), Compression::kGzip, Compression::kZstd},
      {Gzip(data), Compression::kZstd, Compression::kGzip},
      {data, Compression::kGzip, Compression::kNone},
      {Gzip(data), Compression::kNone, Compression::kGzip},
  };
  for (const Case& c : cases) {
    Outcome got = Decompress(c.input, 4096, kNoCap, c.declared);
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    EXPECT_EQ(got.detected, c.actual);
    EXPECT_TRUE(got.output == data);
    EXPECT_EQ(got.warning, "media type declares " + std::string(CompressionName(c.declared)) +
                               ", stream is " + std::string(CompressionName(c.actual)));
  }
}

TEST(DecompressorTest, OutputCapIsExact) {
  std::string data = MakeData(300000, 14);
  for (const std::string& input : {data, Gzip(data), Zstd(data)}) {
    Outcome at_cap = Decompress(input, 4096, data.size());
    EXPECT_TRUE(at_cap.status.ok()) << at_cap.status.ToString();
    Outcome over = Decompress(input, 4096, data.size() - 1);
    EXPECT_EQ(over.status.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(over.status.message(),
              "layer exceeds " + std::to_string(data.size() - 1) + " bytes uncompressed");
    EXPECT_LE(over.output.size(), data.size() - 1);
  }
}

TEST(DecompressorTest, SinkErrorStopsEverythingAndSticks) {
  std::string gz = Gzip(MakeData(3 << 20, 15), {.level = 1});
  int calls = 0;
  Decompressor d(
      [&calls](const char*, size_t) {
        return ++calls == 2 ? ResourceExhaustedError("disk full") : OkStatus();
      },
      kNoCap);
  Status status;
  size_t pos = 0;
  for (; pos < gz.size() && status.ok(); pos += 65536) {
    status = d.Feed(gz.data() + pos, std::min<size_t>(65536, gz.size() - pos));
  }
  EXPECT_EQ(status, ResourceExhaustedError("disk full"));
  EXPECT_LT(pos, gz.size());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(d.Feed(gz.data() + pos, 1), ResourceExhaustedError("disk full"));
  EXPECT_EQ(d.Finish(), ResourceExhaustedError("disk full"));
  EXPECT_EQ(calls, 2);
}

TEST(DecompressorTest, FeedAfterFinishFails) {
  Decompressor d([](const char*, size_t) { return OkStatus(); }, kNoCap);
  ASSERT_TRUE(d.Feed("abcdef", 6).ok());
  ASSERT_TRUE(d.Finish().ok());
  EXPECT_EQ(d.Feed("x", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(d.Finish().code(), StatusCode::kFailedPrecondition);
}

long PeakRssKiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// A bomb: 10 GB of zeros, compressed on the fly and pushed into the decompressor, which must
// give up at the cap, long before the generator runs dry, without holding the output.
TEST(DecompressorTest, GzipBombStoppedAtCap) {
  constexpr uint64_t kBombSize = uint64_t{10} << 30;
  constexpr uint64_t kCap = uint64_t{256} << 20;
  long rss_before = PeakRssKiB();
  uint64_t received = 0;
  Decompressor d(
      [&received](const char*, size_t n) {
        received += n;
        return OkStatus();
      },
      kCap, Compression::kGzip);
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<char> zeros(1 << 20, 0);
  std::vector<char> out(1 << 16);
  uint64_t generated = 0;
  uint64_t compressed = 0;
  Status status;
  auto start = std::chrono::steady_clock::now();
  while (status.ok() && generated < kBombSize) {
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = zeros.size();
    generated += zeros.size();
    do {
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = out.size();
      deflate(&z, Z_NO_FLUSH);
      size_t n = out.size() - z.avail_out;
      compressed += n;
      if (n > 0 && status.ok()) status = d.Feed(out.data(), n);
    } while (z.avail_out == 0 && status.ok());
  }
  deflateEnd(&z);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  EXPECT_LE(received, kCap);
  EXPECT_EQ(received, d.total_out());
  // Stopped within a few MiB of the cap (deflate buffers some input before emitting).
  EXPECT_LT(generated, kCap + (uint64_t{16} << 20));
  EXPECT_LT(PeakRssKiB() - rss_before, 32 * 1024);
  std::printf("gzip bomb: stopped after %llu compressed bytes, %.2f s\n",
              static_cast<unsigned long long>(compressed), seconds);
}

TEST(DecompressorTest, ZstdBombStoppedAtCap) {
  constexpr uint64_t kBombSize = uint64_t{10} << 30;
  constexpr uint64_t kCap = uint64_t{256} << 20;
  long rss_before = PeakRssKiB();
  uint64_t received = 0;
  Decompressor d(
      [&received](const char*, size_t n) {
        received += n;
        return OkStatus();
      },
      kCap, Compression::kZstd);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  std::vector<char> zeros(1 << 20, 0);
  std::vector<char> out(ZSTD_CStreamOutSize());
  uint64_t generated = 0;
  Status status;
  while (status.ok() && generated < kBombSize) {
    ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
    generated += zeros.size();
    while (in.pos < in.size && status.ok()) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t rc = ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_continue);
      ASSERT_FALSE(ZSTD_isError(rc));
      if (o.pos > 0) status = d.Feed(out.data(), o.pos);
    }
  }
  ZSTD_freeCCtx(cctx);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  EXPECT_LE(received, kCap);
  EXPECT_LT(generated, kCap + (uint64_t{16} << 20));
  EXPECT_LT(PeakRssKiB() - rss_before, 32 * 1024);
}

// A frame header (no checksum, no content size) whose window descriptor asks for 2^31 bytes,
// followed by a last raw block of one byte.
TEST(DecompressorTest, ZstdHugeWindowRefused) {
  const std::string frame(
      "\x28\xb5\x2f\xfd\x00\xa8\x09\x00\x00"
      "A",
      10);
  Outcome got = Decompress(frame, frame.size());
  EXPECT_EQ(got.detected, Compression::kZstd);
  EXPECT_EQ(got.status.code(), StatusCode::kResourceExhausted) << got.status.ToString();
  EXPECT_THAT(got.status.message(), HasSubstr("window"));
  // The window descriptor's exponent is the window's log2 minus 10.
  auto with_window_log = [&](int log) {
    std::string f = frame;
    f[5] = static_cast<char>((log - 10) << 3);
    return f;
  };
  // Up to the default limit (32 MiB) a frame is fine; one more power of two is refused, and
  // accepted again where the caller allows more.
  Outcome ok = Decompress(with_window_log(25), 1);
  EXPECT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.output, "A");
  Outcome over = Decompress(with_window_log(26), 1);
  EXPECT_EQ(over.status.code(), StatusCode::kResourceExhausted) << over.status.ToString();
  EXPECT_THAT(over.status.message(), HasSubstr("33554432 bytes"));
  Outcome raised = Decompress(with_window_log(27), 1, kNoCap, Compression::kNone, 128 << 20);
  EXPECT_TRUE(raised.status.ok()) << raised.status.ToString();
  // A limit that is no power of two stands for the power of two below it.
  Outcome between = Decompress(with_window_log(26), 1, kNoCap, Compression::kNone, 100 << 20);
  EXPECT_TRUE(between.status.ok()) << between.status.ToString();
  EXPECT_FALSE(
      Decompress(with_window_log(27), 1, kNoCap, Compression::kNone, 100 << 20).status.ok());
}

TEST(DecompressorTest, ZstdRealFrameWithLargeWindowRefused) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 26);
  std::string data = MakeData(100000, 16);
  std::string out(ZSTD_compressBound(data.size()) + 1024, '\0');
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  // Streaming with the size unknown up front, so the header keeps the large window.
  ASSERT_FALSE(ZSTD_isError(ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_continue)));
  ZSTD_inBuffer none{nullptr, 0, 0};
  ASSERT_EQ(ZSTD_compressStream2(cctx, &o, &none, ZSTD_e_end), 0u);
  ZSTD_freeCCtx(cctx);
  out.resize(o.pos);
  Outcome got = Decompress(out, 4096);
  EXPECT_EQ(got.status.code(), StatusCode::kResourceExhausted) << got.status.ToString();
  Outcome raised = Decompress(out, 4096, kNoCap, Compression::kNone, 64 << 20);
  EXPECT_TRUE(raised.status.ok()) << raised.status.ToString();
  EXPECT_EQ(raised.output, data);
}

TEST(DecompressorTest, GarbageBehindMagicIsDataLoss) {
  std::mt19937 rng(17);
  for (int i = 0; i < 200; ++i) {
    std::string garbage(1 + rng() % 5000, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    std::string magic =
        i % 2 == 0 ? std::string("\x1f\x8b\x08\x00", 4) : std::string("\x28\xb5\x2f\xfd", 4);
    std::string input = magic + garbage;
    Outcome got = Decompress(input, i % 3 == 0 ? 1 : input.size());
    if (i % 2 == 0) {
      EXPECT_EQ(got.status.code(), StatusCode::kDataLoss) << i << ": " << got.status.ToString();
    } else {
      // A random zstd frame header often asks for a huge window, refused as such.
      EXPECT_THAT(got.status.code(),
                  testing::AnyOf(StatusCode::kDataLoss, StatusCode::kResourceExhausted))
          << i << ": " << got.status.ToString();
    }
  }
  // Corruption inside a valid stream, at many places.
  std::string gz = Gzip(MakeData(50000, 18));
  int failures = 0;
  for (size_t at = 10; at < gz.size(); at += 13) {
    std::string bad = gz;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    Outcome got = Decompress(bad, 4096);
    EXPECT_NE(got.status.code(), StatusCode::kOk) << at;
    failures += got.status.code() == StatusCode::kDataLoss;
  }
  EXPECT_GT(failures, 0);
}

// Not a pass/fail test: prints throughput on a 256 MiB stream of compressible data, made of
// 16 copies of one 16 MiB gzip member (zstd frame) at the default level, as layers usually are.
TEST(DecompressorTest, Throughput) {
  constexpr size_t kSize = size_t{256} << 20;
  constexpr size_t kPart = size_t{16} << 20;
  std::string part;
  for (size_t done = 0; done < kPart; done += size_t{1} << 20) {
    part += MakeData(size_t{1} << 20, static_cast<uint32_t>(done >> 20));
  }
  std::string gz_part = Gzip(part, {.level = 6});
  std::string zs_part = Zstd(part, 3);
  std::string gz, zs;
  for (size_t done = 0; done < kSize; done += kPart) {
    gz += gz_part;
    zs += zs_part;
  }
  for (const auto& [name, input] : {std::pair<const char*, const std::string&>{"gzip", gz},
                                    std::pair<const char*, const std::string&>{"zstd", zs}}) {
    uint64_t received = 0;
    Decompressor d(
        [&received](const char*, size_t n) {
          received += n;
          return OkStatus();
        },
        kNoCap);
    auto start = std::chrono::steady_clock::now();
    constexpr size_t kChunk = 1 << 20;
    for (size_t pos = 0; pos < input.size(); pos += kChunk) {
      ASSERT_TRUE(d.Feed(input.data() + pos, std::min(kChunk, input.size() - pos)).ok());
    }
    ASSERT_TRUE(d.Finish().ok());
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(received, kSize);
    std::printf("%s: %zu -> %zu bytes in %.3f s: %.0f MB/s uncompressed\n", name, input.size(),
                kSize, seconds, kSize / seconds / 1e6);
  }
}

}  // namespace
}  // namespace hoist::unpack

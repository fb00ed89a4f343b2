#include "unpack/tar_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"

namespace hoist::unpack {
namespace {

constexpr size_t kBlock = 512;

// ---- Archive builders ---------------------------------------------------------------------

enum class Magic { kUstar, kGnu, kV7 };

struct Spec {
  std::string name = "";
  char type = '0';
  uint64_t size = 0;
  std::string linkname = "";
  uint32_t mode = 0644;
  uint64_t uid = 1000, gid = 1000;
  uint64_t mtime = 1700000000;
  std::string prefix = "";
  Magic magic = Magic::kUstar;
  uint32_t devmajor = 0, devminor = 0;
};

void PutOctal(std::string* b, size_t off, size_t len, uint64_t v) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + (v & 7)));
    v >>= 3;
  } while (v != 0);
  ASSERT_LE(digits.size(), len - 1);
  digits.insert(0, len - 1 - digits.size(), '0');
  b->replace(off, len - 1, digits);
  (*b)[off + len - 1] = '\0';
}

void PutRaw(std::string* b, size_t off, std::string_view bytes) {
  b->replace(off, bytes.size(), bytes);
}

// Recomputes the (unsigned) checksum of the header at `at`.
void FixChecksum(std::string* b, size_t at = 0) {
  std::memset(&(*b)[at + 148], ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>((*b)[at + i]);
  PutOctal(b, at + 148, 7, sum);
}

std::string Header(const Spec& s) {
  std::string h(kBlock, '\0');
  PutRaw(&h, 0, s.name.substr(0, 100));
  PutOctal(&h, 100, 8, s.mode);
  PutOctal(&h, 108, 8, s.uid);
  PutOctal(&h, 116, 8, s.gid);
  PutOctal(&h, 124, 12, s.size);
  PutOctal(&h, 136, 12, s.mtime);
  h[156] = s.type;
  PutRaw(&h, 157, s.linkname.substr(0, 100));
  if (s.magic == Magic::kUstar)
    PutRaw(&h, 257,
           std::string("ustar\0"
                       "00",
                       8));
  if (s.magic == Magic::kGnu) PutRaw(&h, 257, std::string("ustar  \0", 8));
  if (s.magic != Magic::kV7) {
    PutRaw(&h, 265, "user");
    PutRaw(&h, 297, "group");
    PutOctal(&h, 329, 8, s.devmajor);
    PutOctal(&h, 337, 8, s.devminor);
  }
  PutRaw(&h, 345, s.prefix);
  FixChecksum(&h);
  return h;
}

std::string Padded(std::string data) {
  data.append((kBlock - data.size() % kBlock) % kBlock, '\0');
  return data;
}

std::string File(const std::string& name, const std::string& data, char type = '0') {
  Spec s;
  s.name = name;
  s.type = type;
  s.size = data.size();
  return Header(s) + Padded(data);
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string rest = " " + key + "=" + value + "\n";
  size_t n = rest.size() + 1;
  while (std::to_string(n).size() + rest.size() != n) ++n;
  return std::to_string(n) + rest;
}

std::string PaxBody(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string body;
  for (const auto& [k, v] : records) body += PaxRecord(k, v);
  return body;
}

// An extension record of type 'x', 'g', 'L' or 'K' with the given body.
std::string Extension(char type, const std::string& body) {
  Spec s;
  s.name = type == 'L' || type == 'K' ? "././@LongLink" : "PaxHeaders.0/x";
  s.type = type;
  s.size = body.size();
  s.magic = type == 'L' || type == 'K' ? Magic::kGnu : Magic::kUstar;
  return Header(s) + Padded(body);
}

std::string Pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
  return Extension(type, PaxBody(records));
}

std::string End() { return std::string(2 * kBlock, '\0'); }

// ---- Recording handler --------------------------------------------------------------------

struct Recorded {
  TarEntry entry;
  std::string data;
  bool ended = false;
};

class Recorder : public TarHandler {
 public:
  Status OnEntry(const TarEntry& e) override {
    EXPECT_FALSE(open_) << "OnEntry inside an entry";
    entries_.push_back({e, "", false});
    open_ = true;
    return OkStatus();
  }
  Status OnData(const char* data, size_t n) override {
    EXPECT_TRUE(open_) << "OnData outside an entry";
    EXPECT_GT(n, 0u);
    if (!open_) return OkStatus();
    entries_.back().data.append(data, n);
    EXPECT_LE(entries_.back().data.size(), static_cast<size_t>(entries_.back().entry.size));
    return OkStatus();
  }
  Status OnEntryEnd() override {
    EXPECT_TRUE(open_) << "OnEntryEnd outside an entry";
    if (!open_) return OkStatus();
    EXPECT_EQ(entries_.back().data.size(), static_cast<size_t>(entries_.back().entry.size));
    entries_.back().ended = true;
    open_ = false;
    return OkStatus();
  }
  std::vector<Recorded>& entries() { return entries_; }

 private:
  std::vector<Recorded> entries_;
  bool open_ = false;
};

struct Outcome {
  Status feed;    // the first Feed error, or OK
  Status finish;  // Finish (if every Feed succeeded), else the Feed error
  std::vector<Recorded> entries;
  // OK if both succeeded, else the error.
  Status status() const { return feed.ok() ? finish : feed; }
};

Outcome Read(std::string_view archive, size_t chunk = SIZE_MAX, TarLimits limits = {}) {
  Recorder recorder;
  TarReader reader(&recorder, limits);
  Outcome out;
  for (size_t off = 0; off < archive.size() && out.feed.ok(); off += chunk) {
    out.feed = reader.Feed(archive.data() + off, std::min(chunk, archive.size() - off));
  }
  out.finish = out.feed.ok() ? reader.Finish() : out.feed;
  out.entries = std::move(recorder.entries());
  EXPECT_EQ(reader.entries(), out.entries.size());
  return out;
}

// One line per entry with every field and the data, for comparing whole runs.
std::string Describe(const std::vector<Recorded>& entries) {
  std::string s;
  for (const Recorded& r : entries) {
    const TarEntry& e = r.entry;
    s += std::to_string(static_cast<int>(e.type)) + " " + e.path + " -> " + e.linkname + " " +
         std::to_string(e.mode) + " " + std::to_string(e.uid) + ":" + std::to_string(e.gid) + " " +
         std::to_string(e.mtime_sec) + "." + std::to_string(e.mtime_nsec) + " " +
         std::to_string(e.dev_major) + "," + std::to_string(e.dev_minor) + " " +
         std::to_string(e.size) + (r.ended ? " ended" : " open");
    for (const auto& [k, v] : e.xattrs) s += " " + k + "=" + HexEncode(v);
    s += " " + HexEncode(r.data) + "\n";
  }
  return s;
}

void ExpectDataLoss(const Outcome& o, std::string_view text) {
  EXPECT_EQ(o.status().code(), StatusCode::kDataLoss) << o.status().ToString();
  EXPECT_NE(o.status().message().find(text), std::string::npos) << o.status().ToString();
}

// ---- Basic formats ------------------------------------------------------------------------

TEST(TarReader, UstarEntriesOfEveryType) {
  std::string a = File("etc/hosts", "127.0.0.1 localhost\n");
  Spec dir{.name = "etc/", .type = '5', .mode = 0755};
  Spec sym{.name = "etc/link", .type = '2', .linkname = "hosts", .mode = 0777};
  Spec hard{.name = "etc/hard", .type = '1', .linkname = "etc/hosts"};
  Spec chr{.name = "dev/null", .type = '3', .mode = 0666, .devmajor = 1, .devminor = 3};
  Spec blk{.name = "dev/sda", .type = '4', .mode = 0660, .devmajor = 8, .devminor = 0};
  Spec fifo{.name = "run/fifo", .type = '6', .mode = 0600};
  a += Header(dir) + Header(sym) + Header(hard) + Header(chr) + Header(blk) + Header(fifo);
  a += File("contig", "c", '7') + File("old", "o", '\0') + End();

  Outcome o = Read(a);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 9u);
  const TarEntry& f = o.entries[0].entry;
  EXPECT_EQ(f.type, EntryType::kRegular);
  EXPECT_EQ(f.path, "etc/hosts");
  EXPECT_EQ(f.mode, 0644u);
  EXPECT_EQ(f.uid, 1000);
  EXPECT_EQ(f.gid, 1000);
  EXPECT_EQ(f.mtime_sec, 1700000000);
  EXPECT_EQ(f.size, 20);
  EXPECT_EQ(o.entries[0].data, "127.0.0.1 localhost\n");
  EXPECT_EQ(o.entries[1].entry.type, EntryType::kDirectory);
  EXPECT_EQ(o.entries[1].entry.mode, 0755u);
  EXPECT_EQ(o.entries[2].entry.type, EntryType::kSymlink);
  EXPECT_EQ(o.entries[2].entry.linkname, "hosts");
  EXPECT_EQ(o.entries[3].entry.type, EntryType::kHardlink);
  EXPECT_EQ(o.entries[3].entry.linkname, "etc/hosts");
  EXPECT_EQ(o.entries[4].entry.type, EntryType::kCharDevice);
  EXPECT_EQ(o.entries[4].entry.dev_major, 1u);
  EXPECT_EQ(o.entries[4].entry.dev_minor, 3u);
  EXPECT_EQ(o.entries[5].entry.type, EntryType::kBlockDevice);
  EXPECT_EQ(o.entries[5].entry.dev_major, 8u);
  EXPECT_EQ(o.entries[6].entry.type, EntryType::kFifo);
  EXPECT_EQ(o.entries[7].entry.type, EntryType::kRegular);
  EXPECT_EQ(o.entries[7].data, "c");
  EXPECT_EQ(o.entries[8].entry.type, EntryType::kRegular);
  EXPECT_EQ(o.entries[8].data, "o");
  for (const Recorded& r : o.entries) EXPECT_TRUE(r.ended) << r.entry.path;
}

TEST(TarReader, ModeKeepsPermissionBitsOnly) {
  Spec s{.name = "suid", .type = '0', .mode = 0104755};
  Outcome o = Read(Header(s) + End());
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries[0].entry.mode, 04755u);
}

TEST(TarReader, PrefixOnlyForPosixUstar) {
  std::string a = Header({.name = "file", .prefix = "a/b"});
  // GNU headers keep atime/ctime where ustar has the prefix; v7 headers have neither.
  a += Header({.name = "gnu", .prefix = "12345670123", .magic = Magic::kGnu});
  a += Header({.name = "v7", .prefix = "zzz", .magic = Magic::kV7});
  // star: a 131-byte prefix, then atime/ctime and "tar\0" at 508.
  std::string star = Header({.name = "star", .prefix = "p"});
  PutRaw(&star, 476, "11111111111");
  PutRaw(&star, 508, std::string("tar\0", 4));
  FixChecksum(&star);
  a += star + End();
  Outcome o = Read(a);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 4u);
  EXPECT_EQ(o.entries[0].entry.path, "a/b/file");
  EXPECT_EQ(o.entries[1].entry.path, "gnu");
  EXPECT_EQ(o.entries[2].entry.path, "v7");
  EXPECT_EQ(o.entries[3].entry.path, "p/star");
}

TEST(TarReader, NamesStopAtNul) {
  std::string h = Header({.name = "abc", .type = '2', .linkname = "tgt"});
  PutRaw(&h, 4, "junk");    // "abc\0junk"
  PutRaw(&h, 161, "junk");  // "tgt\0junk"
  FixChecksum(&h);
  Outcome o = Read(h + End());
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries[0].entry.path, "abc");
  EXPECT_EQ(o.entries[0].entry.linkname, "tgt");
}

TEST(TarReader, RegularEntryWithTrailingSlashIsDirectory) {
  for (char type : {'0', '\0', '7'}) {
    Outcome o = Read(File("olddir/", "abc", type) + File("next", "xy") + End());
    ASSERT_TRUE(o.status().ok()) << o.status().ToString();
    ASSERT_EQ(o.entries.size(), 2u);
    EXPECT_EQ(o.entries[0].entry.type, EntryType::kDirectory);
    EXPECT_EQ(o.entries[0].entry.size, 0);
    EXPECT_EQ(o.entries[0].data, "");
    EXPECT_EQ(o.entries[1].data, "xy");
  }
}

TEST(TarReader, HeaderOnlyTypesHaveNoDataSection) {
  // As Go's archive/tar reads them: the size of a link, device, directory or fifo is ignored.
  for (char type : {'1', '2', '3', '4', '5', '6'}) {
    Spec s{.name = "x", .type = type, .size = 700, .linkname = "t"};
    Outcome o = Read(Header(s) + File("next", "data") + End());
    ASSERT_TRUE(o.status().ok()) << type << ": " << o.status().ToString();
    ASSERT_EQ(o.entries.size(), 2u);
    EXPECT_EQ(o.entries[0].entry.size, 0);
    EXPECT_EQ(o.entries[1].data, "data");
  }
}

TEST(TarReader, UnsupportedTypesRefusedByName) {
  for (char type : {'V', 'N', 'M', 'D', 'A', 'I'}) {
    Outcome o = Read(Header({.name = "v", .type = type}) + End());
    ExpectDataLoss(o, std::string("unsupported entry type '") + type + "'");
    ExpectDataLoss(o, "tar entry 1 \"v\"");
  }
  ExpectDataLoss(Read(Header({.name = "v", .type = '\x01'}) + End()), "type 0x01");
}

// ---- Checksums and numbers ----------------------------------------------------------------

TEST(TarReader, ChecksumUnsignedAndSignedAccepted) {
  std::string h = Header({.name = "caf\xe9\xe9"});
  Outcome o = Read(h + End());  // unsigned sum
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries[0].entry.path, "caf\xe9\xe9");

  std::memset(&h[148], ' ', 8);
  int sum = 0;
  for (char c : h) sum += static_cast<signed char>(c);
  ASSERT_GT(sum, 0);
  PutOctal(&h, 148, 7, static_cast<uint64_t>(sum));
  o = Read(h + End());  // signed sum, as old tars wrote
  EXPECT_TRUE(o.status().ok()) << o.status().ToString();
}

TEST(TarReader, BadChecksumNamesTheEntry) {
  std::string bad = Header({.name = "usr/bin/x"});
  bad[140] = bad[140] == '1' ? '2' : '1';  // a digit of mtime: the checksum is now wrong
  Outcome o = Read(File("a", "1") + bad + End());
  ExpectDataLoss(o, "tar entry 2 \"usr/bin/x\": bad checksum");
  EXPECT_EQ(o.entries.size(), 1u);
  std::string field = Header({.name = "y"});
  PutRaw(&field, 148, "12x4567");
  ExpectDataLoss(Read(field + End()), "bad checksum");
}

TEST(TarReader, OctalFieldsWithSpacesAndNuls) {
  struct Case {
    std::string field;  // the 8-byte uid field
    int64_t want;       // -1: refused
  };
  const Case cases[] = {
      {std::string("0001750\0", 8), 1000},
      {std::string("  1750 \0", 8), 1000},
      {std::string("1750    ", 8), 1000},
      {std::string("\0\0\0\0\0\0\0\0", 8), 0},
      {std::string("        ", 8), 0},
      {std::string("17501750", 8), 017501750},
      {std::string("12a\0\0\0\0\0", 8), -1},
      {std::string("17 50\0\0\0", 8), -1},
      {std::string("1750\0"
                   "12",
                   8),
       -1},
      {std::string("-1\0\0\0\0\0\0", 8), -1},
      {std::string("8\0\0\0\0\0\0\0", 8), -1},
  };
  for (const Case& c : cases) {
    std::string h = Header({.name = "f"});
    PutRaw(&h, 108, c.field);
    FixChecksum(&h);
    Outcome o = Read(h + End());
    if (c.want < 0) {
      ExpectDataLoss(o, "bad uid field");
    } else {
      ASSERT_TRUE(o.status().ok()) << HexEncode(c.field) << ": " << o.status().ToString();
      EXPECT_EQ(o.entries[0].entry.uid, c.want) << HexEncode(c.field);
    }
  }
}

std::string Base256(size_t len, uint64_t v, bool negative = false) {
  std::string f(len, negative ? '\xff' : '\0');
  for (size_t i = 0; i < 8 && i < len; ++i) {
    f[len - 1 - i] = static_cast<char>(v >> (8 * i));
  }
  f[0] = static_cast<char>(static_cast<unsigned char>(f[0]) | 0x80);
  return f;
}

TEST(TarReader, Base256Numbers) {
  std::string h = Header({.name = "big"});
  PutRaw(&h, 124, Base256(12, 5));                       // size
  PutRaw(&h, 108, Base256(8, 3000000000));               // uid beyond octal's 7 digits
  PutRaw(&h, 136, Base256(12, ~uint64_t{0} - 9, true));  // mtime -10
  FixChecksum(&h);
  Outcome o = Read(h + Padded("hello") + End());
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries[0].entry.size, 5);
  EXPECT_EQ(o.entries[0].data, "hello");
  EXPECT_EQ(o.entries[0].entry.uid, 3000000000);
  EXPECT_EQ(o.entries[0].entry.mtime_sec, -10);
}

TEST(TarReader, BadSizesRefused) {
  struct Case {
    std::string field;
    std::string error;
    StatusCode code;
  };
  std::string overflow(12, '\xff');
  overflow[0] = '\x80';  // a positive 95-bit number
  std::string high_bit = Base256(12, uint64_t{1} << 63);
  const Case cases[] = {
      {Base256(12, ~uint64_t{0} - 9, true), "negative size", StatusCode::kDataLoss},
      {Base256(12, 1, true), "size field overflows", StatusCode::kDataLoss},  // -(2^64-1)
      {Base256(12, ~uint64_t{0}, true), "negative size", StatusCode::kDataLoss},
      {overflow, "size field overflows", StatusCode::kDataLoss},
      {high_bit, "size field overflows", StatusCode::kDataLoss},
      {Base256(12, (uint64_t{1} << 40) + 1), "exceeds the limit", StatusCode::kResourceExhausted},
      {"77777777777", "exceeds the limit", StatusCode::kResourceExhausted},  // 8 GiB - 1
  };
  for (const Case& c : cases) {
    std::string h = Header({.name = "f"});
    PutRaw(&h, 124, c.field);
    FixChecksum(&h);
    TarLimits limits;
    if (c.field[0] == '7') limits.max_file_size = 1 << 30;
    Outcome o = Read(h + End(), SIZE_MAX, limits);
    EXPECT_EQ(o.status().code(), c.code) << o.status().ToString();
    EXPECT_NE(o.status().message().find(c.error), std::string::npos) << o.status().ToString();
  }
}

// ---- GNU and PAX extensions ---------------------------------------------------------------

TEST(TarReader, GnuLongNameAndLongLink) {
  const std::string name = std::string(200, 'n') + "/" + std::string(150, 'm');
  const std::string link = std::string(300, 'l');
  std::string a = Extension('L', name + '\0') + Extension('K', link + '\0');
  a += Header(
      {.name = "truncated-name", .type = '2', .linkname = "truncated-link", .magic = Magic::kGnu});
  a += Extension('L', "second\0with nul") + File("x", "data") + End();
  Outcome o = Read(a);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 2u);
  EXPECT_EQ(o.entries[0].entry.path, name);
  EXPECT_EQ(o.entries[0].entry.linkname, link);
  EXPECT_EQ(o.entries[1].entry.path, std::string("second\0with nul", 15).substr(0, 6));
  EXPECT_EQ(o.entries[1].entry.linkname, "");  // the long link applied to one entry only
}

TEST(TarReader, PaxRecordsOverrideTheHeader) {
  std::string a = Extension('L', "gnu-long-name");
  a += Pax({{"path", "pax/path/file"},
            {"linkpath", "ignored-for-regular"},
            {"uid", "3000000000"},
            {"gid", "42"},
            {"mtime", "1700000000.123456789"},
            {"atime", "1.5"},
            {"uname", "nobody"},
            {"size", "10"},
            {"SCHILY.xattr.user.bin", std::string("x\0y", 3)},
            {"SCHILY.xattr.security.capability", "\x01\x02"},
            {"LIBARCHIVE.xattr.user.with%20space", "aGk="},
            {"SCHILY.xattr.user.bin", "replaced"},
            {"comment", "whatever"}});
  a += Header({.name = "header-name", .size = 0}) + Padded("0123456789");
  a += Pax({{"mtime", "-1.25"}, {"path", "p"}, {"path", ""}}) + Header({.name = "hdr"});
  a += Pax({{"mtime", "5."}}) + Header({.name = "m"});
  a += End();
  Outcome o = Read(a);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 3u);
  const TarEntry& e = o.entries[0].entry;
  EXPECT_EQ(e.path, "pax/path/file");
  EXPECT_EQ(e.uid, 3000000000);
  EXPECT_EQ(e.gid, 42);
  EXPECT_EQ(e.mtime_sec, 1700000000);
  EXPECT_EQ(e.mtime_nsec, 123456789);
  EXPECT_EQ(e.size, 10);
  EXPECT_EQ(o.entries[0].data, "0123456789");
  using Xattrs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(e.xattrs, (Xattrs{{"user.bin", "replaced"},
                              {"security.capability", "\x01\x02"},
                              {"user.with space", "hi"}}));
  EXPECT_EQ(o.entries[1].entry.path, "hdr");  // an empty value removes the keyword
  EXPECT_EQ(o.entries[1].entry.mtime_sec, -2);
  EXPECT_EQ(o.entries[1].entry.mtime_nsec, 750000000);
  EXPECT_TRUE(o.entries[1].entry.xattrs.empty());
  EXPECT_EQ(o.entries[2].entry.mtime_sec, 5);
}

// An empty value deletes the keyword for xattrs too (as Go's archive/tar, podman and umoci):
// whether it follows a value in the same header, in an earlier 'x' header of the same entry, or
// stands alone.
TEST(TarReader, EmptyPaxValueDeletesAnXattr) {
  std::string a = Pax({{"SCHILY.xattr.user.a", "1"},
                       {"SCHILY.xattr.user.b", "2"},
                       {"SCHILY.xattr.user.c", "3"},
                       {"SCHILY.xattr.user.a", ""},
                       {"SCHILY.xattr.user.alone", ""},
                       {"LIBARCHIVE.xattr.user.d", "aGk="},
                       {"LIBARCHIVE.xattr.user.d", ""}});
  a += Pax({{"SCHILY.xattr.user.b", ""}}) + File("f", "1");
  a += Pax({{"SCHILY.xattr.user.e", ""}}) + File("g", "2") + End();
  Outcome o = Read(a);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 2u);
  using Xattrs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.entries[0].entry.xattrs, (Xattrs{{"user.c", "3"}}));
  EXPECT_TRUE(o.entries[1].entry.xattrs.empty());
}

TEST(TarReader, PaxGlobalHeadersAreIgnored) {
  Outcome o = Read(Pax({{"path", "global"}, {"comment", "git"}}, 'g') + File("f", "1") + End());
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  ASSERT_EQ(o.entries.size(), 1u);
  EXPECT_EQ(o.entries[0].entry.path, "f");
  // A global header alone is a complete archive; a malformed one is refused.
  EXPECT_TRUE(Read(Pax({{"comment", "x"}}, 'g') + End()).status().ok());
  ExpectDataLoss(Read(Extension('g', "9 a=b\n") + End()), "malformed PAX record");
}

TEST(TarReader, MalformedPaxRecordsRefused) {
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {"7 a=b\n", "malformed"},                    // length too large
      {"5 a=b\n", "malformed"},                    // length too small
      {"6 a=bx", "malformed"},                     // no newline
      {"6 abc\n", "malformed"},                    // no '='
      {"5 =b\n", "malformed"},                     // empty key
      {"x a=b\n", "malformed"},                    // length not a number
      {" 6 a=b\n", "malformed"},                   // no length
      {"6a=b\n", "malformed"},                     // no space
      {"6 a=b\nzz", "malformed"},                  // trailing bytes
      {std::string("6 a=b\n\0", 7), "malformed"},  // trailing NUL
      {"3 \n", "malformed"},                       // too short
      {"99999999999999999999999 a=b\n", "malformed"},
      {std::string("8 a\0b=c\n", 8), "malformed"},
      {PaxRecord("size", "-1"), "bad PAX record \"size\""},
      {PaxRecord("size", "99999999999999999999"), "bad PAX record \"size\""},
      {PaxRecord("uid", "1x"), "bad PAX record \"uid\""},
      {PaxRecord("mtime", "abc"), "bad PAX record \"mtime\""},
      {PaxRecord("mtime", "1.2.3"), "bad PAX record \"mtime\""},
      {PaxRecord("path", std::string("a\0b", 3)), "bad PAX record \"path\""},
      {PaxRecord("SCHILY.xattr.", "v"), "bad PAX record"},
      {PaxRecord("LIBARCHIVE.xattr.user.a", "!!!"), "bad PAX record"},
      {PaxRecord("LIBARCHIVE.xattr.user%zz", "aGk="), "bad PAX record"},
  };
  for (const Case& c : cases) {
    Outcome o = Read(Extension('x', c.body) + File("f", "1") + End());
    EXPECT_EQ(o.status().code(), StatusCode::kDataLoss) << HexEncode(c.body);
    EXPECT_NE(o.status().message().find(c.error), std::string::npos)
        << HexEncode(c.body) << ": " << o.status().ToString();
    EXPECT_TRUE(o.entries.empty());
  }
}

TEST(TarReader, ExtensionRecordsOverTheLimitRefused) {
  const size_t limit = 1 << 20;
  for (char type : {'x', 'g', 'L', 'K'}) {
    Spec s{.name = "ext", .type = type, .size = limit + 1};
    Outcome o = Read(Header(s) + End());  // refused before its data arrives
    EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
    EXPECT_NE(o.status().message().find("exceeds the limit of 1048576"), std::string::npos);
  }
  // Just under the limit is fine...
  const std::string value(limit - 100, 'v');
  Outcome o = Read(Pax({{"SCHILY.xattr.user.big", value}}) + File("f", "1") + End());
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries[0].entry.xattrs[0].second, value);
  // ...but the records of one entry count together.
  o = Read(Pax({{"SCHILY.xattr.user.a", value.substr(0, limit / 2)}}) +
           Pax({{"SCHILY.xattr.user.b", value.substr(0, limit / 2)}}) + File("f", "1") + End());
  EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
}

TEST(TarReader, ExtensionWithoutEntryRefused) {
  ExpectDataLoss(Read(Pax({{"path", "p"}}) + End()), "not followed by an entry");
  ExpectDataLoss(Read(Extension('L', "name")), "truncated");
  ExpectDataLoss(Read(Extension('L', "name") + End()), "not followed by an entry");
}

// ---- Sparse files -------------------------------------------------------------------------

struct Segment {
  uint64_t offset;
  std::string data;
};

std::string Expand(const std::vector<Segment>& segments, uint64_t real) {
  std::string s(real, '\0');
  for (const Segment& seg : segments) s.replace(seg.offset, seg.data.size(), seg.data);
  return s;
}

std::string Stored(const std::vector<Segment>& segments) {
  std::string s;
  for (const Segment& seg : segments) s += seg.data;
  return s;
}

// Old GNU sparse ('S'): four map entries in the header, 21 in each extension block.
std::string OldGnuSparse(const std::string& name, const std::vector<Segment>& segments,
                         uint64_t real, const std::string& stored) {
  std::string h = Header({.name = name, .type = 'S', .size = stored.size(), .magic = Magic::kGnu});
  std::vector<std::string> blocks;
  size_t i = 0;
  for (; i < segments.size() && i < 4; ++i) {
    PutOctal(&h, 386 + i * 24, 12, segments[i].offset);
    PutOctal(&h, 398 + i * 24, 12, segments[i].data.size());
  }
  PutOctal(&h, 483, 12, real);
  h[482] = i < segments.size() ? 1 : 0;
  FixChecksum(&h);
  std::string out = h;
  while (i < segments.size()) {
    std::string ext(kBlock, '\0');
    for (size_t j = 0; j < 21 && i < segments.size(); ++j, ++i) {
      PutOctal(&ext, j * 24, 12, segments[i].offset);
      PutOctal(&ext, j * 24 + 12, 12, segments[i].data.size());
    }
    ext[504] = i < segments.size() ? 1 : 0;
    out += ext;
  }
  return out + Padded(stored);
}

std::string MapText(const std::vector<Segment>& segments) {
  std::string map = std::to_string(segments.size()) + "\n";
  for (const Segment& s : segments) {
    map += std::to_string(s.offset) + "\n" + std::to_string(s.data.size()) + "\n";
  }
  return map;
}

std::string PaxSparse10(const std::string& name, const std::vector<Segment>& segments,
                        uint64_t real) {
  std::string data = Padded(MapText(segments)) + Stored(segments);
  return Pax({{"GNU.sparse.major", "1"},
              {"GNU.sparse.minor", "0"},
              {"GNU.sparse.name", name},
              {"GNU.sparse.realsize", std::to_string(real)}}) +
         File("GNUSparseFile.0/" + name, data);
}

std::string PaxSparse01(const std::string& name, const std::vector<Segment>& segments,
                        uint64_t real) {
  std::string map;
  for (const Segment& s : segments) {
    if (!map.empty()) map += ",";
    map += std::to_string(s.offset) + "," + std::to_string(s.data.size());
  }
  return Pax({{"GNU.sparse.size", std::to_string(real)},
              {"GNU.sparse.numblocks", std::to_string(segments.size())},
              {"GNU.sparse.map", map},
              {"GNU.sparse.name", name}}) +
         File("GNUSparseFile.0/" + name, Stored(segments));
}

std::string PaxSparse00(const std::string& name, const std::vector<Segment>& segments,
                        uint64_t real) {
  std::vector<std::pair<std::string, std::string>> records = {
      {"GNU.sparse.size", std::to_string(real)},
      {"GNU.sparse.numblocks", std::to_string(segments.size())},
      {"path", name}};
  for (const Segment& s : segments) {
    records.push_back({"GNU.sparse.offset", std::to_string(s.offset)});
    records.push_back({"GNU.sparse.numbytes", std::to_string(s.data.size())});
  }
  return Pax(records) + File("ignored", Stored(segments));
}

std::vector<Segment> ManySegments(size_t n) {
  std::vector<Segment> segs;
  for (size_t i = 0; i < n; ++i) {
    segs.push_back({i * 1000 + 7, std::string(1 + i % 5, static_cast<char>('a' + i % 26))});
  }
  return segs;
}

TEST(TarReader, SparseFilesAreExpanded) {
  struct Layout {
    std::vector<Segment> segments;
    uint64_t real;
  };
  const Layout layouts[] = {
      {{{1000, "hello"}, {5000, "abc"}, {9990, "0123456789"}}, 10000},  // ends in data
      {{{0, "x"}, {70000, "y"}}, 200000},                               // ends in a hole
      {{{0, std::string(600, 'd')}, {600, "e"}, {4096, ""}}, 4096},     // adjacent, empty
      {{}, 3000},                                                       // all hole
      {ManySegments(30), 40000},  // old GNU: two extension blocks
  };
  for (const Layout& l : layouts) {
    const std::string want = Expand(l.segments, l.real);
    const std::string archives[] = {
        OldGnuSparse("s", l.segments, l.real, Stored(l.segments)),
        PaxSparse00("s", l.segments, l.real),
        PaxSparse01("s", l.segments, l.real),
        PaxSparse10("s", l.segments, l.real),
    };
    for (const std::string& a : archives) {
      for (size_t chunk : {size_t{1}, size_t{7}, size_t{512}, SIZE_MAX}) {
        Outcome o = Read(a + File("after", "z") + End(), chunk);
        ASSERT_TRUE(o.status().ok()) << o.status().ToString();
        ASSERT_EQ(o.entries.size(), 2u);
        EXPECT_EQ(o.entries[0].entry.path, "s");
        EXPECT_EQ(o.entries[0].entry.type, EntryType::kRegular);
        EXPECT_EQ(o.entries[0].entry.size, static_cast<int64_t>(l.real));
        EXPECT_TRUE(o.entries[0].data == want) << "segments: " << l.segments.size();
        EXPECT_EQ(o.entries[1].data, "z");
      }
    }
  }
}

// A handler that keeps holes apart from data: holes must reach OnHole, never OnData as zeros.
class HoleRecorder : public Recorder {
 public:
  Status OnData(const char* data, size_t n) override {
    data_bytes_ += n;
    return Recorder::OnData(data, n);
  }
  Status OnHole(uint64_t n) override {
    EXPECT_GT(n, 0u);
    hole_bytes_ += n;
    return Recorder::OnHole(n);  // the default: zeros through OnData
  }
  uint64_t data_bytes_ = 0;  // counts the default's zeros too
  uint64_t hole_bytes_ = 0;
};

TEST(TarReader, SparseHolesArriveThroughOnHole) {
  const std::vector<Segment> segments = {{0, "x"}, {70000, "yz"}};
  const uint64_t real = 200000;
  for (const std::string& a :
       {OldGnuSparse("s", segments, real, Stored(segments)), PaxSparse00("s", segments, real),
        PaxSparse01("s", segments, real), PaxSparse10("s", segments, real)}) {
    HoleRecorder h;
    TarReader reader(&h);
    const std::string archive = a + End();
    ASSERT_TRUE(reader.Feed(archive.data(), archive.size()).ok());
    ASSERT_TRUE(reader.Finish().ok());
    ASSERT_EQ(h.entries().size(), 1u);
    EXPECT_EQ(h.hole_bytes_, real - 3);
    EXPECT_EQ(h.data_bytes_ - h.hole_bytes_, 3u);
    EXPECT_TRUE(h.entries()[0].data == Expand(segments, real));
  }
}

TEST(TarReader, BadSparseMapsRefused) {
  struct Case {
    std::vector<Segment> segments;
    uint64_t real;
    std::string error;
  };
  const Case cases[] = {
      {{{100, "abcd"}, {102, "x"}}, 1000, "overlapping or unsorted"},
      {{{500, "a"}, {100, "b"}}, 1000, "overlapping or unsorted"},
      {{{998, "abc"}}, 1000, "beyond the file size"},
      {{{1001, ""}}, 1000, "beyond the file size"},
  };
  for (const Case& c : cases) {
    const std::string archives[] = {
        OldGnuSparse("s", c.segments, c.real, Stored(c.segments)),
        PaxSparse00("s", c.segments, c.real),
        PaxSparse01("s", c.segments, c.real),
        PaxSparse10("s", c.segments, c.real),
    };
    for (const std::string& a : archives) {
      Outcome o = Read(a + End());
      ExpectDataLoss(o, c.error);
      EXPECT_TRUE(o.entries.empty());
    }
  }
  // Stored bytes that the map does not account for.
  ExpectDataLoss(Read(OldGnuSparse("s", {{0, "ab"}}, 10, "abc") + End()), "sparse map covers 2");
  // Map and numblocks disagree; bad numbers; unknown versions; records without a size.
  ExpectDataLoss(Read(Pax({{"GNU.sparse.size", "10"},
                           {"GNU.sparse.numblocks", "2"},
                           {"GNU.sparse.map", "0,1"}}) +
                      File("f", "a") + End()),
                 "does not match");
  ExpectDataLoss(Read(Pax({{"GNU.sparse.size", "10"},
                           {"GNU.sparse.numblocks", "1"},
                           {"GNU.sparse.map", "0,x"}}) +
                      File("f", "a") + End()),
                 "bad PAX record");
  ExpectDataLoss(Read(Pax({{"GNU.sparse.numbytes", "1"}}) + File("f", "a") + End()),
                 "bad PAX record");
  ExpectDataLoss(
      Read(Pax({{"GNU.sparse.major", "2"}, {"GNU.sparse.minor", "0"}}) + File("f", "a") + End()),
      "unsupported GNU sparse format");
  ExpectDataLoss(Read(Pax({{"GNU.sparse.name", "n"}}) + File("f", "a") + End()),
                 "incomplete GNU.sparse records");
  ExpectDataLoss(Read(Pax({{"GNU.sparse.numblocks", "0"}}) + File("f", "") + End()),
                 "without the real size");
  ExpectDataLoss(Read(Pax({{"GNU.sparse.size", "1"}, {"GNU.sparse.numblocks", "0"}}) +
                      Header({.name = "d", .type = '5'}) + End()),
                 "GNU.sparse records on an entry of type '5'");
  // PAX 1.0 maps: not a number, or running past the data.
  std::string bad_map =
      Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "10"}}) +
      File("f", Padded("1\nzz\n1\n"));
  ExpectDataLoss(Read(bad_map + End()), "malformed PAX sparse map");
  std::string short_map =
      Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "10"}}) +
      File("f", "1\n0\n");
  ExpectDataLoss(Read(short_map + End()), "runs past the file data");
}

TEST(TarReader, SparseSizeIsCapped) {
  TarLimits limits;
  limits.max_file_size = 5000;
  const std::vector<Segment> segs = {{0, "a"}, {9000, "b"}};
  for (const std::string& a : {OldGnuSparse("s", segs, 10000, Stored(segs)),
                               PaxSparse01("s", segs, 10000), PaxSparse10("s", segs, 10000)}) {
    Outcome o = Read(a + End(), SIZE_MAX, limits);
    EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
    EXPECT_TRUE(o.entries.empty());
  }
  // A sparse map larger than max_header_bytes.
  limits = TarLimits();
  limits.max_header_bytes = 4096;
  std::vector<Segment> many = ManySegments(1000);
  Outcome o = Read(OldGnuSparse("s", many, 1100000, Stored(many)) + End(), SIZE_MAX, limits);
  EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
  o = Read(PaxSparse10("s", many, 1100000) + End(), SIZE_MAX, limits);
  EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
}

// ---- Streaming: chunking, truncation, end of archive ------------------------------------

// An archive with every feature, built as pieces so that entry boundaries are known.
struct Piece {
  std::string head;  // headers, extension records, sparse maps
  std::string data;  // what follows (regular data, sparse data), unpadded
};

std::vector<Piece> FeaturePieces() {
  std::vector<Piece> pieces;
  pieces.push_back({Header({.name = "dir/", .type = '5', .mode = 0755}), ""});
  pieces.push_back({Header({.name = "dir/a", .size = 700}), std::string(700, 'a')});
  pieces.push_back({Header({.name = "link", .type = '2', .linkname = "dir/a"}), ""});
  pieces.push_back({Extension('L', std::string(130, 'L') + '\0') +
                        Header({.name = "short", .size = 3, .magic = Magic::kGnu}),
                    "gnu"});
  pieces.push_back({Pax({{"path", "pax/" + std::string(120, 'p')}, {"mtime", "1.5"}}) +
                        Header({.name = "x", .size = 512}),
                    std::string(512, 'P')});
  const std::vector<Segment> segs = {{10, "sp"}, {900, "arse"}};
  std::string old = OldGnuSparse("old-sparse", segs, 1000, "sparse");
  pieces.push_back({old.substr(0, kBlock), "sparse"});
  std::string pax10 = PaxSparse10("pax-sparse", segs, 1000);
  const size_t data_at = pax10.size() - kBlock;  // the stored data is the last (padded) block
  pieces.push_back({pax10.substr(0, data_at), "sparse"});
  pieces.push_back({Header({.name = "empty"}), ""});
  return pieces;
}

std::string Join(const std::vector<Piece>& pieces) {
  std::string a;
  for (const Piece& p : pieces) a += p.head + Padded(p.data);
  return a;
}

TEST(TarReader, EveryChunkSizeGivesTheSameEvents) {
  const std::string a = Join(FeaturePieces()) + End();
  Outcome whole = Read(a);
  ASSERT_TRUE(whole.status().ok()) << whole.status().ToString();
  ASSERT_EQ(whole.entries.size(), FeaturePieces().size());
  const std::string want = Describe(whole.entries);
  for (size_t chunk = 1; chunk <= 600; ++chunk) {
    Outcome o = Read(a, chunk);
    ASSERT_TRUE(o.status().ok()) << chunk << ": " << o.status().ToString();
    ASSERT_EQ(Describe(o.entries), want) << "chunk size " << chunk;
  }
}

TEST(TarReader, TruncatedAtEveryOffset) {
  const std::vector<Piece> pieces = FeaturePieces();
  const std::string body = Join(pieces);
  const std::string a = body + End();
  Outcome whole = Read(a);
  ASSERT_TRUE(whole.status().ok());
  // A cut is fine at the very start, from the end of an entry's data to the end of its
  // padding, and anywhere in the end-of-archive marker.
  std::vector<std::pair<size_t, size_t>> ok_ranges = {{0, 0}};
  std::vector<size_t> complete_after;  // entries complete at the start of each range
  complete_after.push_back(0);
  size_t at = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    at += pieces[i].head.size();
    ok_ranges.push_back({at + pieces[i].data.size(), at + Padded(pieces[i].data).size()});
    complete_after.push_back(i + 1);
    at += Padded(pieces[i].data).size();
  }
  ok_ranges.push_back({body.size(), a.size()});
  complete_after.push_back(pieces.size());
  for (size_t cut = 0; cut <= a.size(); ++cut) {
    int range = -1;
    for (size_t r = 0; r < ok_ranges.size(); ++r) {
      if (cut >= ok_ranges[r].first && cut <= ok_ranges[r].second) range = static_cast<int>(r);
    }
    Outcome o = Read(std::string_view(a).substr(0, cut), 97);
    ASSERT_TRUE(o.feed.ok()) << cut << ": " << o.feed.ToString();
    if (range >= 0) {
      ASSERT_TRUE(o.finish.ok()) << "cut at " << cut << ": " << o.finish.ToString();
      ASSERT_EQ(o.entries.size(), complete_after[range]) << cut;
      std::vector<Recorded> prefix(whole.entries.begin(),
                                   whole.entries.begin() + complete_after[range]);
      ASSERT_EQ(Describe(o.entries), Describe(prefix)) << cut;
    } else {
      ASSERT_EQ(o.finish.code(), StatusCode::kDataLoss) << "cut at " << cut;
      ASSERT_NE(o.finish.message().find("truncated"), std::string::npos) << o.finish.ToString();
    }
  }
}

TEST(TarReader, MissingEndBlocksTolerated) {
  const std::string a = File("f", "abc");
  for (const std::string& tail :
       {std::string(), std::string(kBlock, '\0'), std::string(kBlock + 100, '\0')}) {
    Outcome o = Read(a + tail);
    ASSERT_TRUE(o.status().ok()) << o.status().ToString();
    EXPECT_EQ(o.entries.size(), 1u);
  }
  // Without its padding, too.
  Outcome o = Read(Header({.name = "f", .size = 3}) + "abc");
  EXPECT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_TRUE(Read("").status().ok());
}

TEST(TarReader, LoneZeroBlockFollowedByEntryRefused) {
  ExpectDataLoss(Read(File("a", "1") + std::string(kBlock, '\0') + File("b", "2") + End()),
                 "lone zero block");
}

TEST(TarReader, AnythingAfterTheEndMarkerIsIgnored) {
  std::string a = File("f", "abc") + End() + "garbage that is not a tar header at all";
  a += File("hidden", "never seen");
  Outcome o = Read(a, 10);
  ASSERT_TRUE(o.status().ok()) << o.status().ToString();
  EXPECT_EQ(o.entries.size(), 1u);
}

// CPU time of the calling thread: what the reader costs, whatever else the machine runs (wall
// time under a loaded CI machine would make these checks flaky).
double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TEST(TarReader, GigabytesOfTrailingZerosAreCheap) {
  Recorder recorder;
  TarReader reader(&recorder);
  const std::string a = File("f", "abc");
  ASSERT_TRUE(reader.Feed(a.data(), a.size()).ok());
  const std::string zeros(1 << 20, '\0');
  const double start = ThreadCpuSeconds();
  for (int i = 0; i < 1024; ++i) ASSERT_TRUE(reader.Feed(zeros.data(), zeros.size()).ok());
  const double seconds = ThreadCpuSeconds() - start;
  EXPECT_TRUE(reader.Finish().ok());
  EXPECT_LT(seconds, 0.5);
  EXPECT_EQ(reader.entries(), 1u);
}

long ResidentKiB() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

class CountingHandler : public TarHandler {
 public:
  Status OnEntry(const TarEntry&) override { return OkStatus(); }
  Status OnData(const char*, size_t) override { return OkStatus(); }
  Status OnEntryEnd() override { return OkStatus(); }
};

TEST(TarReader, AMillionEmptyEntriesInBoundedMemory) {
  std::string thousand;
  for (int i = 0; i < 1000; ++i) thousand += Header({.name = "empty-file-" + std::to_string(i)});
  CountingHandler handler;
  TarReader reader(&handler);
  const long before = ResidentKiB();
  const double start = ThreadCpuSeconds();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(reader.Feed(thousand.data(), thousand.size()).ok());
  ASSERT_TRUE(reader.Finish().ok());
  const double seconds = ThreadCpuSeconds() - start;
  EXPECT_EQ(reader.entries(), 1'000'000u);
  EXPECT_LT(seconds, 2.0);
  EXPECT_LT(ResidentKiB() - before, 4096);
}

TEST(TarReader, EntryLimit) {
  TarLimits limits;
  limits.max_entries = 3;
  std::string a;
  for (int i = 0; i < 3; ++i) a += File("f" + std::to_string(i), "x");
  EXPECT_TRUE(Read(a + End(), SIZE_MAX, limits).status().ok());
  Outcome o = Read(a + File("one-too-many", "x") + End(), SIZE_MAX, limits);
  EXPECT_EQ(o.status().code(), StatusCode::kResourceExhausted) << o.status().ToString();
  EXPECT_EQ(o.entries.size(), 3u);
}

class FailingHandler : public TarHandler {
 public:
  explicit FailingHandler(int fail_at) : fail_at_(fail_at) {}
  Status OnEntry(const TarEntry&) override { return Step(); }
  Status OnData(const char*, size_t) override { return Step(); }
  Status OnEntryEnd() override { return Step(); }

 private:
  Status Step() {
    return ++calls_ == fail_at_ ? Status(StatusCode::kPermissionDenied, "handler says no")
                                : OkStatus();
  }
  int fail_at_;
  int calls_ = 0;
};

TEST(TarReader, HandlerErrorsReturnedAsIs) {
  const std::string a = File("f", "abc") + Padded(OldGnuSparse("s", {{5, "x"}}, 10, "x")) + End();
  const Status want(StatusCode::kPermissionDenied, "handler says no");
  for (int fail_at = 1; fail_at <= 6; ++fail_at) {  // entry, data, end; entry, data.., end
    FailingHandler handler(fail_at);
    TarReader reader(&handler);
    Status s;
    for (size_t off = 0; off < a.size() && s.ok(); off += 100) {
      s = reader.Feed(a.data() + off, std::min<size_t>(100, a.size() - off));
    }
    EXPECT_EQ(s, want) << fail_at;
    EXPECT_EQ(reader.Feed(a.data(), 1), want) << "sticky";
    EXPECT_EQ(reader.Finish(), want);
  }
}

// ---- Archives written by GNU tar ----------------------------------------------------------

class GnuTarFixtures : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("tar --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar";
    char tmpl[] = "/tmp/tar_reader_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Write("small.txt", "hello, world\n");
    Write("empty", "");
    ASSERT_EQ(mkdir((dir_ + "/sub").c_str(), 0750), 0);
    std::string random;
    uint32_t x = 12345;
    for (int i = 0; i < 3000; ++i)
      random += static_cast<char>((x = x * 1664525 + 1013904223) >> 24);
    Write("sub/random.bin", random);
    ASSERT_EQ(symlink("small.txt", (dir_ + "/link").c_str()), 0);
    ASSERT_EQ(link((dir_ + "/small.txt").c_str(), (dir_ + "/hard").c_str()), 0);
    ASSERT_EQ(mkdir((dir_ + "/" + std::string(60, 'd')).c_str(), 0755), 0);
    Write(std::string(60, 'd') + "/" + std::string(90, 'f'), "prefix-split name\n");
    Write(std::string(150, 'n'), "needs a long name\n");
    // Sparse: data at 0, at 1 MiB, and a hole to the end (4 MiB).
    const std::string sparse = dir_ + "/sparse.img";
    int fd = open(sparse.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "head", 4, 0), 4);
    std::string blob(10000, 'S');
    ASSERT_EQ(pwrite(fd, blob.data(), blob.size(), 1 << 20), static_cast<ssize_t>(blob.size()));
    ASSERT_EQ(ftruncate(fd, 4 << 20), 0);
    close(fd);
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  void Write(const std::string& name, const std::string& data) {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    out << data;
    ASSERT_TRUE(out.good()) << name;
  }
  std::string Contents(const std::string& name) {
    std::ifstream in(dir_ + "/" + name, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  std::string Tar(const std::string& options, const std::string& files) {
    std::string cmd = "tar " + options + " -C '" + dir_ + "' -cf - " + files + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << cmd;
    return out;
  }
  // Reads the archive in odd chunks and checks every entry against the directory.
  void Check(const std::string& archive, size_t want_entries) {
    Outcome o = Read(archive, 4093);
    ASSERT_TRUE(o.status().ok()) << o.status().ToString();
    ASSERT_EQ(o.entries.size(), want_entries);
    for (const Recorded& r : o.entries) {
      std::string path = r.entry.path;
      if (path.starts_with("./")) path = path.substr(2);
      struct stat st;
      ASSERT_EQ(lstat((dir_ + "/" + path).c_str(), &st), 0) << path;
      switch (r.entry.type) {
        case EntryType::kRegular:
          EXPECT_TRUE(S_ISREG(st.st_mode)) << path;
          EXPECT_TRUE(r.data == Contents(path)) << path;
          break;
        case EntryType::kDirectory:
          EXPECT_TRUE(S_ISDIR(st.st_mode)) << path;
          break;
        case EntryType::kSymlink:
          EXPECT_EQ(r.entry.linkname, "small.txt");
          break;
        case EntryType::kHardlink:
          EXPECT_TRUE(r.entry.linkname == "small.txt" || r.entry.linkname == "hard") << path;
          break;
        default:
          ADD_FAILURE() << path;
      }
      EXPECT_EQ(r.entry.mode, st.st_mode & 07777) << path;
      EXPECT_EQ(r.entry.mtime_sec, st.st_mtime) << path;
      EXPECT_EQ(r.entry.uid, static_cast<int64_t>(st.st_uid)) << path;
    }
  }

  std::string dir_;
  const std::string short_files_ = "small.txt empty sub link hard sparse.img";
  const std::string long_files_ =
      std::string(60, 'd') + " " + std::string(150, 'n') + " " + short_files_;
};

TEST_F(GnuTarFixtures, Formats) {
  Check(Tar("--format=gnu", long_files_), 10);
  Check(Tar("--format=pax", long_files_), 10);
  Check(Tar("--format=ustar", std::string(60, 'd') + " " + short_files_), 9);
  Check(Tar("--format=v7", "small.txt empty link hard sparse.img"), 5);
}

TEST_F(GnuTarFixtures, SparseFormats) {
  struct Case {
    std::string options;
    std::string marker;  // proves the archive really is sparse
  };
  const Case cases[] = {
      {"--format=gnu --sparse", ""},
      {"--format=pax --sparse --sparse-version=0.0", "GNU.sparse.offset"},
      {"--format=pax --sparse --sparse-version=0.1", "GNU.sparse.map"},
      {"--format=pax --sparse --sparse-version=1.0", "GNU.sparse.major"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.options);
    const std::string a = Tar(c.options, "sparse.img small.txt");
    ASSERT_LT(a.size(), size_t{1} << 20) << "not stored sparse";
    if (c.marker.empty()) {
      EXPECT_EQ(a[156], 'S');
    } else {
      EXPECT_NE(a.find(c.marker), std::string::npos);
    }
    Check(a, 2);
  }
}

}  // namespace
}  // namespace hoist::unpack

#include "unpack/tar_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::unpack {
namespace {

constexpr size_t kBlock = 512;

// Header field offsets and lengths (POSIX ustar; GNU and star where noted).
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100, kUidOff = 108, kGidOff = 116, kIdLen = 8;
constexpr size_t kSizeOff = 124, kMtimeOff = 136, kNumLen = 12;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kLinkOff = 157, kLinkLen = 100;
constexpr size_t kMagicOff = 257;
constexpr size_t kDevMajorOff = 329, kDevMinorOff = 337;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155, kStarPrefixLen = 131;
constexpr size_t kStarTrailerOff = 508;
constexpr size_t kGnuSparseOff = 386, kGnuIsExtendedOff = 482, kGnuRealSizeOff = 483;
constexpr size_t kGnuSparseEntries = 4, kGnuExtEntries = 21, kGnuExtIsExtendedOff = 504;
constexpr size_t kSparseEntryLen = 24;  // offset[12] numbytes[12]

enum class Format { kV7, kUstar, kStar, kGnu };

uint64_t PadOf(uint64_t n) { return (kBlock - n % kBlock) % kBlock; }

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// The bytes of a fixed-size field up to its first NUL.
std::string CString(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

std::string TypeName(char type) {
  unsigned char c = static_cast<unsigned char>(type);
  if (c >= 0x21 && c < 0x7f) return std::string("'") + type + "'";
  static const char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[c >> 4] + kHex[c & 15];
}

enum class Num { kOk, kBad, kOverflow };

// A numeric header field: octal digits with optional leading and trailing spaces and NULs (an
// empty field is 0), or GNU base-256 (high bit of the first byte set; two's complement, so
// negative values exist).
Num ParseNumeric(const char* f, size_t len, int64_t* out) {
  const auto* b = reinterpret_cast<const unsigned char*>(f);
  if (len > 0 && (b[0] & 0x80) != 0) {
    const unsigned char inv = (b[0] & 0x40) != 0 ? 0xff : 0;  // negative: -x-1 == ~x
    uint64_t x = 0;
    for (size_t i = 0; i < len; ++i) {
      unsigned char c = b[i] ^ inv;
      if (i == 0) c &= 0x7f;
      if ((x >> 56) != 0) return Num::kOverflow;
      x = (x << 8) | c;
    }
    if ((x >> 63) != 0) return Num::kOverflow;
    *out = inv != 0 ? ~static_cast<int64_t>(x) : static_cast<int64_t>(x);
    return Num::kOk;
  }
  size_t begin = 0, end = len;
  while (begin < end && (f[begin] == ' ' || f[begin] == '\0')) ++begin;
  while (end > begin && (f[end - 1] == ' ' || f[end - 1] == '\0')) --end;
  int64_t x = 0;
  for (size_t i = begin; i < end; ++i) {
    if (f[i] < '0' || f[i] > '7') return Num::kBad;
    if (x > (std::numeric_limits<int64_t>::max() >> 3)) return Num::kOverflow;
    x = x * 8 + (f[i] - '0');
  }
  *out = x;
  return Num::kOk;
}

// A non-negative decimal number: digits only, at least one.
bool ParseDecimal(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  int64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (x > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) return false;
    x = x * 10 + (c - '0');
  }
  *out = x;
  return true;
}

// A PAX time: "[-]seconds[.fraction]"; digits past nanoseconds are dropped. The result is
// normalized so that 0 <= nsec < 1e9.
bool ParsePaxTime(std::string_view s, int64_t* sec, int64_t* nsec) {
  bool negative = false;
  if (!s.empty() && s[0] == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  std::string_view whole = s, fraction;
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    whole = s.substr(0, dot);
    fraction = s.substr(dot + 1);
  }
  int64_t secs = 0;
  if (!ParseDecimal(whole, &secs)) return false;
  int64_t ns = 0;
  for (size_t i = 0; i < fraction.size(); ++i) {
    if (fraction[i] < '0' || fraction[i] > '9') return false;
    if (i < 9) ns = ns * 10 + (fraction[i] - '0');
  }
  for (size_t i = fraction.size(); i < 9; ++i) ns *= 10;
  if (!negative) {
    *sec = secs;
    *nsec = ns;
  } else if (ns == 0) {
    *sec = -secs;
    *nsec = 0;
  } else {
    *sec = -secs - 1;
    *nsec = 1'000'000'000 - ns;
  }
  return true;
}

// RFC 3986 percent-decoding, as libarchive encodes xattr names.
bool PercentDecode(std::string_view s, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

bool ChecksumOk(const char* h) {
  if ((static_cast<unsigned char>(h[kChksumOff]) & 0x80) != 0) return false;
  int64_t want = 0;
  if (ParseNumeric(h + kChksumOff, kChksumLen, &want) != Num::kOk) return false;
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    char c = (i >= kChksumOff && i < kChksumOff + kChksumLen) ? ' ' : h[i];
    unsigned_sum += static_cast<unsigned char>(c);
    signed_sum += static_cast<signed char>(c);
  }
  return want == unsigned_sum || want == signed_sum;
}

Format DetectFormat(const char* h) {
  const char* magic = h + kMagicOff;
  if (std::memcmp(magic, "ustar ", 6) == 0) return Format::kGnu;
  if (std::memcmp(magic, "ustar\0", 6) == 0) {
    return std::memcmp(h + kStarTrailerOff, "tar\0", 4) == 0 ? Format::kStar : Format::kUstar;
  }
  return Format::kV7;
}

void SetXattr(std::vector<std::pair<std::string, std::string>>* xattrs,
              std::map<std::string, size_t>* index, std::string name, std::string value) {
  auto [it, inserted] = index->emplace(name, xattrs->size());
  if (inserted) {
    xattrs->emplace_back(std::move(name), std::move(value));
  } else {
    (*xattrs)[it->second].second = std::move(value);
  }
}

// An empty PAX value: the keyword, i.e. an earlier value for the same name, is deleted.
void DeleteXattr(std::vector<std::pair<std::string, std::string>>* xattrs,
                 std::map<std::string, size_t>* index, const std::string& name) {
  auto it = index->find(name);
  if (it == index->end()) return;
  const size_t pos = it->second;
  index->erase(it);
  xattrs->erase(xattrs->begin() + static_cast<std::ptrdiff_t>(pos));
  for (auto& [unused, i] : *index) {
    if (i > pos) --i;
  }
}

}  // namespace

TarReader::TarReader(TarHandler* handler, TarLimits limits) : handler_(handler), limits_(limits) {}

std::string TarReader::Context() const {
  std::string s = "tar entry " + std::to_string(cur_index_);
  if (!cur_name_.empty()) s += " " + Quote(cur_name_);
  return s;
}

Status TarReader::Error(std::string_view what) const {
  return DataLossError(Context() + ": " + std::string(what));
}

Status TarReader::Feed(const char* data, size_t n) {
  if (state_ == State::kFailed) return error_;
  if (state_ == State::kEnd) return OkStatus();
  Status s = Consume(data, n);
  if (!s.ok()) {
    error_ = s;
    state_ = State::kFailed;
  }
  return s;
}

Status TarReader::Finish() {
  Status s;
  switch (state_) {
    case State::kFailed:
      return error_;
    case State::kEnd:
      return OkStatus();
    case State::kHeader:
      if (pending_.any) {
        s = Error("truncated: extension records not followed by an entry");
      } else if (block_len_ > 0 && !AllZero(block_, block_len_)) {
        s = DataLossError("tar entry " + std::to_string(entries_ + 1) + ": truncated header");
      }
      break;
    case State::kPadding:
      if (pending_.any) s = Error("truncated extension record");
      break;
    case State::kExtension:
      s = Error("truncated extension record");
      break;
    case State::kSparseExt:
    case State::kSparseMap:
      s = Error("truncated sparse map");
      break;
    case State::kData:
    case State::kSparseData:
    case State::kSkip:
      s = Error("truncated file data");
      break;
  }
  if (!s.ok()) {
    error_ = s;
    state_ = State::kFailed;
  }
  return s;
}

Status TarReader::Consume(const char* p, size_t n) {
  for (;;) {
    switch (state_) {
      case State::kEnd:
      case State::kFailed:
        return OkStatus();
      case State::kHeader:
      case State::kSparseExt:
      case State::kSparseMap: {
        if (n == 0) return OkStatus();
        const char* block;
        if (block_len_ == 0 && n >= kBlock) {
          block = p;
          p += kBlock;
          n -= kBlock;
        } else {
          size_t take = std::min(kBlock - block_len_, n);
          std::memcpy(block_ + block_len_, p, take);
          block_len_ += take;
          p += take;
          n -= take;
          if (block_len_ < kBlock) return OkStatus();
          block_len_ = 0;
          block = block_;
        }
        RETURN_IF_ERROR(OnBlock(block));
        break;
      }
      case State::kExtension: {
        if (remaining_ == 0) {
          RETURN_IF_ERROR(FinishExtension());
          break;
        }
        if (n == 0) return OkStatus();
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n));
        ext_.append(p, take);
        p += take;
        n -= take;
        remaining_ -= take;
        break;
      }
      case State::kData: {
        if (remaining_ == 0) {
          RETURN_IF_ERROR(EndEntry());
          break;
        }
        if (n == 0) return OkStatus();
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n));
        RETURN_IF_ERROR(handler_->OnData(p, take));
        p += take;
        n -= take;
        remaining_ -= take;
        break;
      }
      case State::kSparseData: {
        if (seg_left_ == 0) {
          if (seg_index_ == segments_.size()) {
            if (sparse_real_ > pos_) RETURN_IF_ERROR(handler_->OnHole(sparse_real_ - pos_));
            pos_ = sparse_real_;
            segments_.clear();
            RETURN_IF_ERROR(EndEntry());
            break;
          }
          const Segment s = segments_[seg_index_++];
          if (s.offset > pos_) RETURN_IF_ERROR(handler_->OnHole(s.offset - pos_));
          pos_ = s.offset;
          seg_left_ = s.length;
          break;
        }
        if (n == 0) return OkStatus();
        size_t take = static_cast<size_t>(std::min<uint64_t>(seg_left_, n));
        RETURN_IF_ERROR(handler_->OnData(p, take));
        p += take;
        n -= take;
        seg_left_ -= take;
        pos_ += take;
        break;
      }
      case State::kSkip:
      case State::kPadding: {
        if (remaining_ == 0) {
          if (state_ == State::kSkip) {
            state_ = State::kPadding;
            remaining_ = padding_;
          } else {
            state_ = State::kHeader;
          }
          break;
        }
        if (n == 0) return OkStatus();
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n));
        p += take;
        n -= take;
        remaining_ -= take;
        break;
      }
    }
  }
}

Status TarReader::OnBlock(const char* block) {
  switch (state_) {
    case State::kHeader:
      return ProcessHeader(block);
    case State::kSparseExt:
      return ProcessSparseExtBlock(block);
    case State::kSparseMap:
      return ProcessSparseMapBlock(block);
    default:
      return InternalError("tar reader: block in state " + std::to_string(int(state_)));
  }
}

Status TarReader::ProcessHeader(const char* h) {
  if (AllZero(h, kBlock)) {
    if (pending_.any) return Error("extension records not followed by an entry");
    if (++zero_blocks_ == 2) state_ = State::kEnd;
    return OkStatus();
  }
  cur_index_ = entries_ + 1;
  cur_name_ = pending_.path        ? *pending_.path
              : pending_.long_name ? *pending_.long_name
                                   : CString(h + kNameOff, kNameLen);
  if (zero_blocks_ > 0) return Error("a lone zero block is followed by more data");
  if (!ChecksumOk(h)) return Error("bad checksum");
  const char type = h[kTypeOff];
  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') return StartExtension(h, type);
  return StartEntry(h, type);
}

Status TarReader::StartExtension(const char* h, char type) {
  int64_t size = 0;
  switch (ParseNumeric(h + kSizeOff, kNumLen, &size)) {
    case Num::kOk:
      break;
    case Num::kBad:
      return Error("bad size field");
    case Num::kOverflow:
      return Error("size field overflows");
  }
  if (size < 0) return Error("negative size");
  const char* kind = type == 'x'   ? "PAX header"
                     : type == 'g' ? "PAX global header"
                     : type == 'L' ? "GNU long name"
                                   : "GNU long link";
  const uint64_t usize = static_cast<uint64_t>(size);
  if (usize > limits_.max_header_bytes) {
    return ResourceExhaustedError(Context() + ": " + kind + " of " + std::to_string(usize) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(limits_.max_header_bytes));
  }
  if (type != 'g') {
    pending_.any = true;
    pending_.bytes += usize;
    if (pending_.bytes > limits_.max_header_bytes) {
      return ResourceExhaustedError(Context() + ": extension records of " +
                                    std::to_string(pending_.bytes) + " bytes exceed the limit of " +
                                    std::to_string(limits_.max_header_bytes));
    }
  }
  ext_type_ = type;
  ext_.clear();
  remaining_ = usize;
  padding_ = PadOf(usize);
  state_ = State::kExtension;
  return OkStatus();
}

Status TarReader::FinishExtension() {
  switch (ext_type_) {
    case 'x':
      RETURN_IF_ERROR(ParsePax(ext_, &pending_));
      break;
    case 'g':
      RETURN_IF_ERROR(ParsePax(ext_, nullptr));
      break;
    case 'L':
      pending_.long_name = CString(ext_.data(), ext_.size());
      break;
    case 'K':
      pending_.long_link = CString(ext_.data(), ext_.size());
      break;
  }
  if (ext_.capacity() > 64 * 1024) {
    std::string().swap(ext_);
  } else {
    ext_.clear();
  }
  state_ = State::kPadding;
  remaining_ = padding_;
  return OkStatus();
}

// Records are "<length> <key>=<value>\n", the length counting the whole record in bytes.
Status TarReader::ParsePax(std::string_view data, Pending* out) {
  while (!data.empty()) {
    size_t space = data.find(' ');
    int64_t len = 0;
    if (space == std::string_view::npos || space > 20 ||
        !ParseDecimal(data.substr(0, space), &len) ||
        len < static_cast<int64_t>(space) + 4 ||  // at least "N k=\n"
        static_cast<uint64_t>(len) > data.size()) {
      return Error("malformed PAX record");
    }
    std::string_view record = data.substr(0, static_cast<size_t>(len));
    if (record.back() != '\n') return Error("malformed PAX record");
    std::string_view kv = record.substr(space + 1, record.size() - space - 2);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) return Error("malformed PAX record");
    std::string_view key = kv.substr(0, eq);
    if (key.find('\0') != std::string_view::npos) return Error("malformed PAX record");
    if (out != nullptr) RETURN_IF_ERROR(ApplyPaxRecord(key, kv.substr(eq + 1), out));
    data.remove_prefix(static_cast<size_t>(len));
  }
  return OkStatus();
}

Status TarReader::ApplyPaxRecord(std::string_view key, std::string_view value, Pending* out) {
  const std::string bad = "bad PAX record " + Quote(key);
  // An empty value removes an earlier value of the keyword (POSIX).
  auto set_string = [&](std::optional<std::string>* field) -> Status {
    if (value.find('\0') != std::string_view::npos) return Error(bad);
    if (value.empty()) {
      field->reset();
    } else {
      *field = std::string(value);
    }
    return OkStatus();
  };
  auto set_number = [&](std::optional<int64_t>* field) -> Status {
    int64_t v = 0;
    if (value.empty()) {
      field->reset();
    } else if (ParseDecimal(value, &v)) {
      *field = v;
    } else {
      return Error(bad);
    }
    return OkStatus();
  };
  constexpr std::string_view kSchily = "SCHILY.xattr.", kLibarchive = "LIBARCHIVE.xattr.";
  constexpr std::string_view kSparse = "GNU.sparse.";
  if (key == "path") return set_string(&out->path);
  if (key == "linkpath") return set_string(&out->linkpath);
  if (key == "size") return set_number(&out->size);
  if (key == "uid") return set_number(&out->uid);
  if (key == "gid") return set_number(&out->gid);
  if (key == "mtime") {
    int64_t sec = 0, nsec = 0;
    if (value.empty()) {
      out->mtime.reset();
    } else if (ParsePaxTime(value, &sec, &nsec)) {
      out->mtime = {sec, nsec};
    } else {
      return Error(bad);
    }
    return OkStatus();
  }
  if (key.starts_with(kSchily)) {
    std::string_view name = key.substr(kSchily.size());
    if (name.empty()) return Error(bad);
    if (value.empty()) {
      DeleteXattr(&out->xattrs, &out->xattr_index, std::string(name));
    } else {
      SetXattr(&out->xattrs, &out->xattr_index, std::string(name), std::string(value));
    }
    return OkStatus();
  }
  if (key.starts_with(kLibarchive)) {
    std::string name, decoded;
    if (!PercentDecode(key.substr(kLibarchive.size()), &name) || name.empty() ||
        name.find('\0') != std::string::npos || !Base64Decode(value, &decoded)) {
      return Error(bad);
    }
    if (value.empty()) {
      DeleteXattr(&out->xattrs, &out->xattr_index, name);
    } else {
      SetXattr(&out->xattrs, &out->xattr_index, std::move(name), std::move(decoded));
    }
    return OkStatus();
  }
  if (!key.starts_with(kSparse)) return OkStatus();  // atime, uname, comment, ...: ignored
  out->sparse = true;
  std::string_view k = key.substr(kSparse.size());
  if (k == "major") return set_string(&out->sparse_major);
  if (k == "minor") return set_string(&out->sparse_minor);
  if (k == "name") return set_string(&out->sparse_name);
  if (k == "size") return set_number(&out->sparse_size);
  if (k == "realsize") return set_number(&out->sparse_realsize);
  if (k == "numblocks") return set_number(&out->sparse_numblocks);
  if (k == "offset" || k == "numbytes") {  // format 0.0: pairs of records, in order
    int64_t v = 0;
    if ((k == "offset") != (out->sparse_map.size() % 2 == 0) || !ParseDecimal(value, &v)) {
      return Error(bad);
    }
    out->sparse_map.push_back(v);
    return OkStatus();
  }
  if (k == "map") {  // format 0.1: "offset,length,offset,length,..."
    out->sparse_has_map = true;
    out->sparse_map.clear();
    if (value.empty()) return OkStatus();
    for (std::string_view part : Split(value, ',')) {
      int64_t v = 0;
      if (!ParseDecimal(part, &v)) return Error(bad);
      out->sparse_map.push_back(v);
    }
    return OkStatus();
  }
  return OkStatus();  // other GNU.sparse.* keywords carry nothing we need
}

Status TarReader::StartEntry(const char* h, char type) {
  EntryType entry_type = EntryType::kRegular;
  bool regular = false, gnu_sparse = false;
  switch (type) {
    case '0':
    case '\0':
    case '7':
      regular = true;
      break;
    case 'S':
      regular = gnu_sparse = true;
      break;
    case '1':
      entry_type = EntryType::kHardlink;
      break;
    case '2':
      entry_type = EntryType::kSymlink;
      break;
    case '3':
      entry_type = EntryType::kCharDevice;
      break;
    case '4':
      entry_type = EntryType::kBlockDevice;
      break;
    case '5':
      entry_type = EntryType::kDirectory;
      break;
    case '6':
      entry_type = EntryType::kFifo;
      break;
    default:
      return Error("unsupported entry type " + TypeName(type));
  }
  if (entries_ >= limits_.max_entries) {
    return ResourceExhaustedError(Context() + ": more than " + std::to_string(limits_.max_entries) +
                                  " entries");
  }
  Pending p = std::move(pending_);
  pending_ = Pending();

  const Format format = DetectFormat(h);
  TarEntry e;
  e.type = entry_type;
  e.path = CString(h + kNameOff, kNameLen);
  if (format == Format::kUstar || format == Format::kStar) {
    std::string prefix =
        CString(h + kPrefixOff, format == Format::kStar ? kStarPrefixLen : kPrefixLen);
    if (!prefix.empty()) e.path = prefix + "/" + e.path;
  }
  e.linkname = CString(h + kLinkOff, kLinkLen);
  if (p.long_name) e.path = std::move(*p.long_name);
  if (p.long_link) e.linkname = std::move(*p.long_link);
  if (p.path) e.path = std::move(*p.path);
  if (p.linkpath) e.linkname = std::move(*p.linkpath);
  if (p.sparse_name) e.path = std::move(*p.sparse_name);
  cur_name_ = e.path;

  // Reads a numeric header field that must not be negative.
  auto field = [&](size_t off, size_t len, const char* what, int64_t* out) -> Status {
    switch (ParseNumeric(h + off, len, out)) {
      case Num::kOk:
        break;
      case Num::kBad:
        return Error(std::string("bad ") + what + " field");
      case Num::kOverflow:
        return Error(std::string(what) + " field overflows");
    }
    if (*out < 0) return Error(std::string("negative ") + what);
    return OkStatus();
  };
  int64_t mode = 0;
  RETURN_IF_ERROR(field(kModeOff, kIdLen, "mode", &mode));
  e.mode = static_cast<uint32_t>(mode & 07777);
  if (p.uid) {
    e.uid = *p.uid;
  } else {
    RETURN_IF_ERROR(field(kUidOff, kIdLen, "uid", &e.uid));
  }
  if (p.gid) {
    e.gid = *p.gid;
  } else {
    RETURN_IF_ERROR(field(kGidOff, kIdLen, "gid", &e.gid));
  }
  if (p.mtime) {
    e.mtime_sec = p.mtime->first;
    e.mtime_nsec = p.mtime->second;
  } else {
    switch (ParseNumeric(h + kMtimeOff, kNumLen, &e.mtime_sec)) {  // may be negative
      case Num::kOk:
        break;
      case Num::kBad:
        return Error("bad mtime field");
      case Num::kOverflow:
        return Error("mtime field overflows");
    }
  }
  int64_t size = 0;
  if (p.size) {
    size = *p.size;
  } else {
    RETURN_IF_ERROR(field(kSizeOff, kNumLen, "size", &size));
  }
  if ((type == '3' || type == '4') && format != Format::kV7) {
    int64_t major = 0, minor = 0;
    RETURN_IF_ERROR(field(kDevMajorOff, kIdLen, "devmajor", &major));
    RETURN_IF_ERROR(field(kDevMinorOff, kIdLen, "devminor", &minor));
    if (major > std::numeric_limits<uint32_t>::max() ||
        minor > std::numeric_limits<uint32_t>::max()) {
      return Error("device number out of range");
    }
    e.dev_major = static_cast<uint32_t>(major);
    e.dev_minor = static_cast<uint32_t>(minor);
  }
  e.xattrs = std::move(p.xattrs);

  if (p.sparse && (!regular || gnu_sparse)) {
    return Error("GNU.sparse records on an entry of type " + TypeName(type));
  }
  const bool directory_by_name =
      regular && !gnu_sparse && !p.sparse && !e.path.empty() && e.path.back() == '/';
  if (!regular || directory_by_name) {
    // No data for the handler; only a regular entry turned directory has a section to skip.
    if (directory_by_name) e.type = EntryType::kDirectory;
    ++entries_;
    RETURN_IF_ERROR(handler_->OnEntry(e));
    RETURN_IF_ERROR(handler_->OnEntryEnd());
    remaining_ = directory_by_name ? static_cast<uint64_t>(size) : 0;
    padding_ = PadOf(remaining_);
    state_ = State::kSkip;
    return OkStatus();
  }

  padding_ = PadOf(static_cast<uint64_t>(size));
  if (gnu_sparse) {
    int64_t real = 0;
    RETURN_IF_ERROR(field(kGnuRealSizeOff, kNumLen, "sparse realsize", &real));
    entry_ = std::move(e);
    segments_.clear();
    sparse_map_bytes_ = 0;
    sparse_stored_ = static_cast<uint64_t>(size);
    sparse_real_ = static_cast<uint64_t>(real);
    for (size_t i = 0; i < kGnuSparseEntries; ++i) {
      const size_t off = kGnuSparseOff + i * kSparseEntryLen;
      if (h[off] == '\0') break;
      int64_t offset = 0, length = 0;
      RETURN_IF_ERROR(field(off, kNumLen, "sparse offset", &offset));
      RETURN_IF_ERROR(field(off + kNumLen, kNumLen, "sparse length", &length));
      segments_.push_back({static_cast<uint64_t>(offset), static_cast<uint64_t>(length)});
    }
    if (h[kGnuIsExtendedOff] != 0) {
      state_ = State::kSparseExt;
      return OkStatus();
    }
    return StartSparseData();
  }

  if (p.sparse) {
    bool v1 = false;
    if (p.sparse_major || p.sparse_minor) {
      const std::string major = p.sparse_major.value_or(""), minor = p.sparse_minor.value_or("");
      if (major == "1" && minor == "0") {
        v1 = true;
      } else if (!(major == "0" && (minor == "0" || minor == "1"))) {
        return Error("unsupported GNU sparse format " + Quote(major + "." + minor));
      }
    } else if (!p.sparse_has_map && p.sparse_map.empty() && !p.sparse_numblocks) {
      return Error("incomplete GNU.sparse records");
    }
    std::optional<int64_t> real = p.sparse_realsize ? p.sparse_realsize : p.sparse_size;
    if (!real) return Error("GNU.sparse records without the real size");
    entry_ = std::move(e);
    segments_.clear();
    sparse_stored_ = static_cast<uint64_t>(size);
    sparse_real_ = static_cast<uint64_t>(*real);
    if (v1) {
      ext_.clear();
      map_scan_ = 0;
      map_count_ = -1;
      map_offset_.reset();
      state_ = State::kSparseMap;
      return OkStatus();
    }
    if (!p.sparse_numblocks || p.sparse_map.size() % 2 != 0 ||
        static_cast<uint64_t>(*p.sparse_numblocks) != p.sparse_map.size() / 2) {
      return Error("GNU.sparse map does not match GNU.sparse.numblocks");
    }
    for (size_t i = 0; i < p.sparse_map.size(); i += 2) {
      segments_.push_back(
          {static_cast<uint64_t>(p.sparse_map[i]), static_cast<uint64_t>(p.sparse_map[i + 1])});
    }
    return StartSparseData();
  }

  if (static_cast<uint64_t>(size) > limits_.max_file_size) {
    return ResourceExhaustedError(Context() + ": file size " + std::to_string(size) +
                                  " exceeds the limit of " + std::to_string(limits_.max_file_size));
  }
  e.size = size;
  ++entries_;
  RETURN_IF_ERROR(handler_->OnEntry(e));
  remaining_ = static_cast<uint64_t>(size);
  state_ = State::kData;
  return OkStatus();
}

Status TarReader::ProcessSparseExtBlock(const char* block) {
  sparse_map_bytes_ += kBlock;
  if (sparse_map_bytes_ > limits_.max_header_bytes) {
    return ResourceExhaustedError(Context() + ": GNU sparse map exceeds " +
                                  std::to_string(limits_.max_header_bytes) + " bytes");
  }
  for (size_t i = 0; i < kGnuExtEntries; ++i) {
    const char* entry = block + i * kSparseEntryLen;
    if (entry[0] == '\0') break;
    int64_t offset = 0, length = 0;
    if (ParseNumeric(entry, kNumLen, &offset) != Num::kOk ||
        ParseNumeric(entry + kNumLen, kNumLen, &length) != Num::kOk || offset < 0 || length < 0) {
      return Error("bad GNU sparse map entry");
    }
    segments_.push_back({static_cast<uint64_t>(offset), static_cast<uint64_t>(length)});
  }
  if (block[kGnuExtIsExtendedOff] != 0) return OkStatus();
  return StartSparseData();
}

// The PAX 1.0 map opens the data section: decimal numbers, one a line (count, then offset and
// length per segment), padded with NULs to a block boundary.
Status TarReader::ProcessSparseMapBlock(const char* block) {
  if (sparse_stored_ < kBlock) return Error("PAX sparse map runs past the file data");
  sparse_stored_ -= kBlock;
  if (ext_.size() + kBlock > limits_.max_header_bytes) {
    return ResourceExhaustedError(Context() + ": PAX sparse map exceeds " +
                                  std::to_string(limits_.max_header_bytes) + " bytes");
  }
  ext_.append(block, kBlock);
  for (;;) {
    if (map_count_ >= 0 && static_cast<uint64_t>(map_count_) == segments_.size() && !map_offset_) {
      ext_.clear();
      return StartSparseData();
    }
    const size_t newline = ext_.find('\n', map_scan_);
    if (newline == std::string::npos) return OkStatus();  // the map goes on in the next block
    int64_t v = 0;
    if (!ParseDecimal(std::string_view(ext_).substr(map_scan_, newline - map_scan_), &v)) {
      return Error("malformed PAX sparse map");
    }
    map_scan_ = newline + 1;
    if (map_count_ < 0) {
      // Each segment takes at least four bytes ("0\n0\n").
      if (static_cast<uint64_t>(v) > limits_.max_header_bytes / 4) {
        return Error("PAX sparse map announces too many segments");
      }
      map_count_ = v;
    } else if (!map_offset_) {
      map_offset_ = static_cast<uint64_t>(v);
    } else {
      segments_.push_back({*map_offset_, static_cast<uint64_t>(v)});
      map_offset_.reset();
    }
  }
}

// Checks the sparse map against the sizes, then announces the entry.
Status TarReader::StartSparseData() {
  if (sparse_real_ > limits_.max_file_size) {
    return ResourceExhaustedError(Context() + ": sparse file size " + std::to_string(sparse_real_) +
                                  " exceeds the limit of " + std::to_string(limits_.max_file_size));
  }
  uint64_t end = 0, stored = 0;
  for (const Segment& s : segments_) {
    if (s.offset < end) return Error("sparse map has overlapping or unsorted segments");
    if (s.length > sparse_real_ || s.offset > sparse_real_ - s.length) {
      return Error("sparse segment beyond the file size");
    }
    end = s.offset + s.length;
    stored += s.length;
  }
  if (stored != sparse_stored_) {
    return Error("sparse map covers " + std::to_string(stored) + " bytes but the archive holds " +
                 std::to_string(sparse_stored_));
  }
  entry_.size = static_cast<int64_t>(sparse_real_);
  ++entries_;
  RETURN_IF_ERROR(handler_->OnEntry(entry_));
  entry_ = TarEntry();
  seg_index_ = 0;
  seg_left_ = 0;
  pos_ = 0;
  state_ = State::kSparseData;
  return OkStatus();
}

Status TarHandler::OnHole(uint64_t n) {
  static const char kZeros[64 * 1024] = {};
  while (n > 0) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
    RETURN_IF_ERROR(OnData(kZeros, take));
    n -= take;
  }
  return OkStatus();
}

Status TarReader::EndEntry() {
  RETURN_IF_ERROR(handler_->OnEntryEnd());
  state_ = State::kPadding;
  remaining_ = padding_;
  return OkStatus();
}

}  // namespace hoist::unpack

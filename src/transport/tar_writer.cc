#include "transport/tar_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/status_macros.h"

namespace hoist::transport {
namespace {

// `value` in octal, right-aligned in a field of `width` bytes (the last a NUL).
void Octal(char* field, size_t width, uint64_t value) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0; value >>= 3) field[i] = static_cast<char>('0' + (value & 7));
}

// One PAX record: "<len> <key>=<value>\n", where len counts itself.
std::string PaxRecord(const std::string& key, const std::string& value) {
  const size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + std::to_string(body).size();
  if (std::to_string(len).size() != std::to_string(body).size()) ++len;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

}  // namespace

Status TarWriter::Put(const char* data, size_t n) {
  RETURN_IF_ERROR(WriteAll(fd_, data, n));
  end_ += n;
  return OkStatus();
}

Status TarWriter::Header(const std::string& name, uint64_t size, char type) {
  constexpr uint64_t kMaxOctalSize = 077777777777ULL;
  std::string pax;
  if (name.size() > 100) pax += PaxRecord("path", name);
  if (size > kMaxOctalSize) pax += PaxRecord("size", std::to_string(size));
  if (!pax.empty()) {
    RETURN_IF_ERROR(Header("PaxHeaders/entry", pax.size(), 'x'));
    RETURN_IF_ERROR(Write(pax.data(), pax.size()));
    RETURN_IF_ERROR(EndFile());
  }
  char h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  Octal(h + 100, 8, type == '5' ? 0755 : 0644);
  Octal(h + 108, 8, 0);
  Octal(h + 116, 8, 0);
  Octal(h + 124, 12, std::min(size, kMaxOctalSize));
  Octal(h + 136, 12, 0);
  h[156] = type;
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  Octal(h + 148, 7, sum);
  RETURN_IF_ERROR(Put(h, sizeof h));
  left_ = type == '5' ? 0 : size;
  written_ = 0;
  return OkStatus();
}

Status TarWriter::AddDirectory(const std::string& name) {
  file_start_ = end_;
  return Header(name, 0, '5');
}

Status TarWriter::BeginFile(const std::string& name, uint64_t size) {
  file_start_ = end_;
  RETURN_IF_ERROR(Header(name, size, '0'));
  data_start_ = end_;
  size_ = size;
  return OkStatus();
}

Status TarWriter::Write(const char* data, size_t n) {
  if (n > left_) return InternalError("tar writer: more data than the header announced");
  RETURN_IF_ERROR(Put(data, n));
  left_ -= n;
  written_ += n;
  return OkStatus();
}

Status TarWriter::EndFile() {
  if (left_ != 0) return InternalError("tar writer: less data than the header announced");
  static const char zeros[512] = {};
  const size_t pad = (512 - written_ % 512) % 512;
  written_ = 0;
  return Put(zeros, pad);
}

Status TarWriter::AddFile(const std::string& name, std::string_view bytes) {
  RETURN_IF_ERROR(BeginFile(name, bytes.size()));
  RETURN_IF_ERROR(Write(bytes.data(), bytes.size()));
  return EndFile();
}

Status TarWriter::Finish() {
  static const char zeros[1024] = {};
  return Put(zeros, sizeof zeros);
}

Status TarWriter::SeekBack(uint64_t to) {
  if (::lseek(fd_, static_cast<off_t>(to), SEEK_SET) < 0) return ErrnoError(errno, "seek tar");
  end_ = to;
  return OkStatus();
}

Status TarWriter::RestartFile() {
  RETURN_IF_ERROR(SeekBack(data_start_));
  left_ = size_;
  written_ = 0;
  return OkStatus();
}

Status TarWriter::DiscardFile() {
  RETURN_IF_ERROR(SeekBack(file_start_));
  if (::ftruncate(fd_, static_cast<off_t>(file_start_)) != 0) {
    return ErrnoError(errno, "cut back tar");
  }
  left_ = 0;
  written_ = 0;
  return OkStatus();
}

}  // namespace hoist::transport

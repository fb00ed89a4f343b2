// Writing a tar as a stream: the oci-archive and docker-archive destinations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hoist/status.h"

namespace hoist::transport {

// Writes a tar (ustar headers, PAX records for long names and large sizes) to an fd, from its
// current position on. Entries get mode 0644 (directories 0755), owner 0:0 and mtime 0, so the
// same content gives the same archive. Not thread-safe; the fd is not owned.
class TarWriter {
 public:
  explicit TarWriter(int fd) : fd_(fd) {}
  // A directory entry ("blobs/").
  Status AddDirectory(const std::string& name);
  // A file of `size` bytes: the header now, then exactly `size` bytes through Write, then End.
  // More or fewer bytes than `size` is Internal.
  Status BeginFile(const std::string& name, uint64_t size);
  Status Write(const char* data, size_t n);
  Status EndFile();
  // A whole file in one call.
  Status AddFile(const std::string& name, std::string_view bytes);
  // The end-of-archive marker.
  Status Finish();

  // Only for an fd that can seek (a regular file). RestartFile goes back to the first byte of the
  // current file's data (its source starts again); DiscardFile takes back the current file, its
  // header included, and cuts the fd there: the archive is as before BeginFile.
  Status RestartFile();
  Status DiscardFile();

  // Bytes of the archive written so far (RestartFile and DiscardFile take some back).
  uint64_t size() const { return end_; }

 private:
  Status Header(const std::string& name, uint64_t size, char type);
  Status Put(const char* data, size_t n);  // writes and counts
  Status SeekBack(uint64_t to);

  int fd_;
  uint64_t end_ = 0;         // bytes written
  uint64_t file_start_ = 0;  // where the current entry's headers begin
  uint64_t data_start_ = 0;  // where the current file's data begins
  uint64_t size_ = 0;        // of the current file
  uint64_t left_ = 0;        // bytes the current file still needs
  uint64_t written_ = 0;     // of the current file
};

}  // namespace hoist::transport

#include "base/byte_pipe.h"

#include <algorithm>
#include <cstring>

namespace hoist {

BytePipe::BytePipe(Sink sink, size_t block_size, size_t blocks)
    : sink_(std::move(sink)), block_size_(block_size) {
  if (blocks < 2) blocks = 2;  // one the writer fills, one the sink reads
  for (size_t i = 0; i < blocks; ++i) {
    free_.push_back({std::unique_ptr<char[]>(new char[block_size_]), 0});
  }
  filling_ = std::move(free_.back());
  free_.pop_back();
  thread_ = std::thread([this] { Run(); });
}

void BytePipe::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [&] { return aborted_ || closed_ || !full_.empty(); });
    if (aborted_ || full_.empty()) return;  // aborted, or closed and all handed to the sink
    Block b = std::move(full_.front());
    full_.pop_front();
    busy_ = true;
    lock.unlock();
    Status s = sink_(b.data.get(), b.size);
    lock.lock();
    busy_ = false;
    b.size = 0;
    free_.push_back(std::move(b));
    if (!s.ok() && status_.ok()) {
      status_ = s;
      // Nothing more for the sink: what waits is given back, and the writer stops waiting.
      for (auto& f : full_) free_.push_back(std::move(f));
      full_.clear();
    }
    changed_.notify_all();
    if (!status_.ok()) return;
  }
}

bool BytePipe::Flush(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return aborted_ || !status_.ok() || !free_.empty(); });
  if (aborted_ || !status_.ok()) {
    filling_.size = 0;
    return false;
  }
  if (filling_.size > 0) {
    full_.push_back(std::move(filling_));
    filling_ = std::move(free_.back());
    free_.pop_back();
    changed_.notify_all();
  }
  return true;
}

Status BytePipe::Write(const char* data, size_t n) {
  while (n > 0) {
    if (filling_.size == block_size_) {
      std::unique_lock<std::mutex> lock(mu_);
      if (!Flush(lock)) return aborted_ ? CancelledError("stream aborted") : status_;
    }
    const size_t take = std::min(n, block_size_ - filling_.size);
    std::memcpy(filling_.data.get() + filling_.size, data, take);
    filling_.size += take;
    data += take;
    n -= take;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (aborted_) return CancelledError("stream aborted");
  return status_;
}

Status BytePipe::Close() {
  if (thread_.joinable()) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      (void)Flush(lock);  // false: the sink failed, and says so below
      closed_ = true;
      changed_.notify_all();
    }
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (aborted_) return CancelledError("stream aborted");
  return status_;
}

void BytePipe::Abort() {
  if (!thread_.joinable()) return;  // closed or aborted already
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    changed_.notify_all();
  }
  thread_.join();
}

}  // namespace hoist

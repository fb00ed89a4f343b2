#include "pull/inflight.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

namespace hoist::pull {

struct Claim::Entry {
  bool ended = false;  // guarded by the table's mutex
};

namespace {

struct Table {
  std::mutex mu;
  std::condition_variable ended;  // notified whenever an owner's claim ends
  std::map<std::string, std::shared_ptr<Claim::Entry>> owners;
};

Table& TheTable() {
  static Table* table = new Table;  // never destroyed: claims may end during exit
  return *table;
}

}  // namespace

Claim Claim::Take(const std::string& key) {
  Table& t = TheTable();
  std::lock_guard<std::mutex> lock(t.mu);
  auto [it, inserted] = t.owners.try_emplace(key, nullptr);
  if (inserted) it->second = std::make_shared<Entry>();
  return Claim(key, it->second, inserted);
}

Claim& Claim::operator=(Claim&& other) noexcept {
  if (this != &other) {
    Release();
    key_ = std::move(other.key_);
    entry_ = std::move(other.entry_);
    owner_ = other.owner_;
    other.owner_ = false;
  }
  return *this;
}

Claim::~Claim() { Release(); }

void Claim::Release() {
  if (!owner_ || entry_ == nullptr) return;
  Table& t = TheTable();
  {
    std::lock_guard<std::mutex> lock(t.mu);
    entry_->ended = true;
    t.owners.erase(key_);
  }
  owner_ = false;
  t.ended.notify_all();
}

Status Claim::Wait(const std::atomic<bool>* cancel, const std::atomic<bool>* also_cancel) {
  auto cancelled = [](const std::atomic<bool>* flag) { return flag != nullptr && flag->load(); };
  if (owner_ || entry_ == nullptr) return OkStatus();
  Table& t = TheTable();
  {
    std::unique_lock<std::mutex> lock(t.mu);
    while (!entry_->ended) {
      if (cancelled(cancel) || cancelled(also_cancel)) return CancelledError("cancelled");
      t.ended.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  *this = Take(key_);
  return OkStatus();
}

}  // namespace hoist::pull

#include "serve/store_view.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <mutex>

#include "base/status_macros.h"
#include "image/records.h"
#include "image/references.h"

namespace hoist::serve {
namespace {

struct IndexStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtime_ns = -1;
  bool operator==(const IndexStamp&) const = default;
};

// The records and what they reference, as of one index.json.
struct Snapshot {
  std::vector<Descriptor> records;
  image::References references;
};

class LocalView : public StoreView {
 public:
  explicit LocalView(const content::Store& store) : store_(store) {}

  Result<std::shared_ptr<const std::vector<Descriptor>>> Records() override {
    ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> snap, Current());
    return std::shared_ptr<const std::vector<Descriptor>>(snap, &snap->records);
  }

  Result<UniqueFd> OpenBlob(const Digest& d) override {
    ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> snap, Current());
    if (!snap->references.blobs.contains(d)) {
      return NotFoundError("blob " + d.String() + ": not referenced by an image record");
    }
    ASSIGN_OR_RETURN(UniqueFd dir,
                     store_.OpenDir(store_.layout().BlobAlgorithmDir(d.algorithm()), false));
    UniqueFd fd(openat(dir.get(), d.hex().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid()) {
      return errno == ENOENT ? NotFoundError("blob " + d.String() + ": not in the store")
                             : ErrnoError(errno, "blob " + d.String());
    }
    if (fstat(fd.get(), &st) != 0) return ErrnoError(errno, "blob " + d.String());
    if (!S_ISREG(st.st_mode)) return NotFoundError("blob " + d.String() + ": not a file");
    return fd;
  }

 private:
  Result<std::shared_ptr<const Snapshot>> Current() {
    struct stat st {};
    if (stat(store_.layout().IndexFile().c_str(), &st) != 0) {
      return ErrnoError(errno, store_.layout().IndexFile());
    }
    IndexStamp now{st.st_dev, st.st_ino, st.st_size,
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    std::lock_guard<std::mutex> lock(mu_);
    if (snapshot_ != nullptr && now == stamp_) return snapshot_;
    ASSIGN_OR_RETURN(std::vector<Descriptor> records, image::List(store_));
    auto s = std::make_shared<Snapshot>();
    s->references = image::CollectReferences(store_, records);
    s->records = std::move(records);
    snapshot_ = std::move(s);
    stamp_ = now;
    return snapshot_;
  }

  const content::Store& store_;
  std::mutex mu_;
  IndexStamp stamp_;
  std::shared_ptr<const Snapshot> snapshot_;
};

}  // namespace

std::unique_ptr<StoreView> OpenStoreView(const content::Store& store) {
  return std::make_unique<LocalView>(store);
}

}  // namespace hoist::serve

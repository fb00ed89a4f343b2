// What `hoist serve` reads of a store: the image records, and the blobs they reference. The
// server asks only through this interface, so that it can run in a process that cannot open the
// store at all (broker.h: `hoist serve --user`).
#pragma once

#include <memory>
#include <vector>

#include "base/unique_fd.h"
#include "content/store.h"
#include "hoist/descriptor.h"
#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::serve {

class StoreView {
 public:
  virtual ~StoreView() = default;
  // The image records (entries of index.json) as of now: the same pointer for as long as
  // index.json has not changed.
  virtual Result<std::shared_ptr<const std::vector<Descriptor>>> Records() = 0;
  // A read-only descriptor of the committed blob `d`, a regular file, when a record references
  // it (image/references.h); NotFound when none does or it is not here.
  virtual Result<UniqueFd> OpenBlob(const Digest& d) = 0;
};

// A view of `store`, opened by this process; it must outlive the view. Thread-safe. What the
// records reference is computed again only when index.json changes.
std::unique_ptr<StoreView> OpenStoreView(const content::Store& store);

}  // namespace hoist::serve

// `hoist serve --user`: serving split in two processes, so that the one that talks HTTP to the
// network can neither open nor change the store, which stays its owner's alone (0700).
//
// RunSeparated forks. The child closes every descriptor but 0-2 and its end of a socketpair,
// runs `prepare` while still privileged (read the TLS key and htpasswd, open the access log,
// bind the address), then drops to `id` for good (DropPrivileges; then it is killed when the
// parent dies) and runs `serve` with a StoreView that asks the parent for everything. The parent
// keeps the store open and answers two questions, one short message each:
//   R<generation>   the records, as a sealed memfd of JSON when they changed since <generation>
//   B<digest>       a read-only descriptor of a blob that an image record references
// Every answer is "<status code> <text>", with at most one descriptor (SCM_RIGHTS). The parent
// parses nothing else from the child, builds no path from what it sends (the digest is parsed
// and the blob opened through OpenStoreView's checks), and hands out nothing writable and no
// directory. So a child taken over by a hostile request can read what `hoist serve` would serve
// anyway, and nothing more.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>

#include "content/store.h"
#include "hoist/status.h"
#include "serve/store_view.h"

namespace hoist::serve {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
};

// "USER[:GROUP]", each a name or a number, looked up in the passwd and group databases. Without
// GROUP, the user's primary group; a uid with no passwd entry needs GROUP. InvalidArgument for
// uid 0 or gid 0 (not unprivileged) and malformed text, NotFound for an unknown name.
Result<Identity> ParseIdentity(const std::string& spec);

// Makes this process `id` for good: no supplementary groups, real, effective and saved uid and
// gid, hence no capabilities; no new privileges (setuid binaries, file capabilities), not
// dumpable. Checks that root cannot be regained. Needs root.
Status DropPrivileges(const Identity& id);

// Runs the server as described above; returns the child's exit code once it has ended, or the
// error `prepare` or DropPrivileges returned in the child. When `stop` becomes true the child
// is sent SIGTERM (SIGKILL 30 s later if it has not ended). FailedPrecondition unless run as
// root. Call it before this process starts threads.
Result<int> RunSeparated(const content::Store& store, const Identity& id,
                         const std::atomic<bool>& stop, const std::function<Status()>& prepare,
                         const std::function<int(StoreView&)>& serve);

}  // namespace hoist::serve

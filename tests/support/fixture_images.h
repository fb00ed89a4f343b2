// Fixture images for the extraction tests: one realistic multi-layer image (thousands of files
// and every kind of entry and whiteout a real image has), and hostile images whose layers try
// to reach outside the directory they are extracted into or to exhaust the extractor. All are
// deterministic and pushed with correct digests and diff_ids (unless the case is about a wrong
// one), so only the extractor stands in the way. Test-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hoist/status.h"
#include "support/image_builder.h"

namespace hoist::testing {

// The realistic image's layers, bottom first. Four layers, about 3300 regular files in nested
// directories with varied sizes and mtimes, and:
//   layer 0: hardlinks (usr/bin/tool ← tool-hard, tool-hard2; a long-named pair), symlinks
//            (relative bin/tool → ../usr/bin/tool, absolute etc/abs-link, dangling
//            etc/dangling, a link target over 100 chars), srv/ro/ with mode 0555, usr/bin/su
//            04755, usr/bin/wall 02755 group 5, home/user/ owned 1000:1000 (0750),
//            tmp/ 01777, user.* xattrs on a file and a directory, an empty var/empty/, names
//            over 100 chars (ustar prefix split and PAX), a fifo and a char device 1,3;
//            etc/to-delete, opt/old/… and var/cache/{old1,old2,sub/old3} to be removed later.
//   layer 1: etc/os-release replaced; whiteouts etc/.wh.to-delete (a file) and opt/.wh.old
//            (a directory); var/cache/ made opaque (".wh..wh..opq") with new content
//            var/cache/{new1,sub/new3} that must stay.
//   layer 2: a file added inside the 0555 directory, files owned 33:33, a file replaced again.
//   layer 3: a whiteout of one of layer 1's files, a hardlink pair, a directory's mode changed.
// Every layer lists the parent directories of its entries, as docker's tar writer does.
std::vector<std::vector<TarEntry>> RealisticLayers();
// The config of the realistic image: Entrypoint ["/usr/bin/tool", "--serve"],
// Cmd ["--port", "8080"], WorkingDir /srv/www, an Env.
ImageConfigSpec RealisticConfig();
// The realistic image in the given format (same layer tars for both formats).
BuiltImage RealisticImage(Format f);

// Paths (relative to the root) of the realistic image's expected result, for direct checks
// that do not depend on any other tool.
struct RealisticExpectations {
  std::vector<std::string> absent;   // removed by whiteouts / the opaque directory
  std::vector<std::string> present;  // must exist after all layers
  size_t min_regular_files = 0;      // regular files in the final tree, at least
};
RealisticExpectations RealisticExpected();

// A hostile image and what pulling it must give.
struct HostileCase {
  std::string name;  // a short identifier: "dotdot", "gzip_bomb", ...
  BuiltImage image;  // OCI format
  // kPullsUnpackFails: the pull succeeds (each layer has a directory of its own, where a
  // hardlink whose target is not in the layer is recorded as pointing into a lower layer, and
  // not created) and unpack, which applies every layer onto one root, refuses it.
  enum class Outcome { kSucceeds, kFails, kEither, kPullsUnpackFails } outcome = Outcome::kFails;
  StatusCode code = StatusCode::kOk;  // kFails, kPullsUnpackFails: the status code expected
  std::string message;                // kFails, kPullsUnpackFails: a part of the message
  // kSucceeds: paths that must exist in the unpacked root (where a clamped escape lands).
  std::vector<std::string> inside;
};

// The hostile cases. `oracle_dir` is an absolute directory outside the store and every
// destination, holding the file "secret" (see MakeOracle); the layers aim at it.
// `bomb_bytes`: how many bytes the gzip bomb inflates to (the test's max_layer_bytes is
// smaller).
std::vector<HostileCase> HostileCases(const std::string& oracle_dir, uint64_t bomb_bytes);

// Fills `oracle_dir` (created if missing) with a file "secret", a directory "sub" with a file,
// and a symlink "link" → secret.
Status MakeOracle(const std::string& oracle_dir);

}  // namespace hoist::testing

// The names and the xattr that mark deletions in a layer (OCI image spec, "Whiteouts"), for the
// extractor, the layer check and the merge.
#pragma once

namespace hoist::unpack {

inline constexpr char kWhiteoutPrefix[] = ".wh.";          // ".wh.<name>": <name> is deleted
inline constexpr char kWhiteoutMetaPrefix[] = ".wh..wh.";  // reserved (AUFS); opaque marker
inline constexpr char kOpaqueMarker[] = ".wh..wh..opq";    // the directory's lower content goes
inline constexpr char kOverlayOpaqueXattr[] = "trusted.overlay.opaque";  // overlayfs: the same

}  // namespace hoist::unpack

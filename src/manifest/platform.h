// Platforms: the host's, parsing "os/arch[/variant]", normalization of architecture aliases,
// matching, and picking one manifest out of an index.
#pragma once

#include <string_view>

#include "hoist/descriptor.h"
#include "hoist/status.h"
#include "manifest/manifest.h"

namespace hoist::manifest {

// The platform of this machine, from uname(2): os "linux"; machine x86_64 → amd64,
// aarch64 → arm64/v8, armv7l → arm/v7, armv6l → arm/v6, i686 (or i386..i586) → 386; ppc64le,
// s390x and riscv64 as they are. An unknown machine name is returned as the architecture.
Platform HostPlatform();

// The spelling used in indexes for `p`: os lowercased; architecture aliases resolved
// (x86_64/x86-64 → amd64, aarch64 → arm64, i386/i686 → 386, armhf → arm/v7, armel → arm/v6);
// variants spelled "vN" (arm64 without a variant is v8; amd64 v1 is no variant). An arm
// platform without a variant keeps none (it means "any" when wanted).
Platform Normalize(Platform p);

// Parses "os/arch" or "os/arch/variant" (e.g. "linux/arm64/v8"), normalized as above. Each
// part must be [A-Za-z0-9._-]+ starting with a letter or
// digit. Errors are InvalidArgument.
Result<Platform> ParsePlatform(std::string_view text);

// Whether an image for `have` runs where `want` is asked for: os and architecture equal after
// normalizing; the variant equal when `want` names one. An arm `have` without a variant
// counts as v7; an arm `want` without a variant matches any.
bool Matches(const Platform& want, const Platform& have);

// The first entry of `index` of a manifest media type (media_types.h) whose platform
// Matches `want`. Entries without a platform never match. None: NotFound
// "no manifest for platform linux/s390x in index; available: linux/amd64, linux/arm64/v8".
Result<Descriptor> SelectPlatform(const Index& index, const Platform& want);

}  // namespace hoist::manifest

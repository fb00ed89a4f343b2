#include "manifest/platform.h"

#include <sys/utsname.h>

#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// A non-empty run of [A-Za-z0-9._-] starting with a letter or digit.
bool IsPlatformPart(std::string_view part) {
  if (part.empty() || !IsAlnum(part.front())) return false;
  for (char c : part) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// "7" → "v7"; anything else unchanged.
std::string VariantWithV(std::string_view variant) {
  if (!variant.empty() && variant.front() >= '0' && variant.front() <= '9') {
    return "v" + std::string(variant);
  }
  return std::string(variant);
}

}  // namespace

Platform HostPlatform() {
  Platform p;
  p.os = "linux";
  struct utsname u {};
  if (uname(&u) != 0) return p;
  std::string machine = u.machine;
  if (machine == "armv7l" || machine == "armv7") {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (machine == "armv6l" || machine == "armv6") {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (machine == "armv5tel" || machine == "armv5l") {
    p.architecture = "arm";
    p.variant = "v5";
  } else if (machine == "i386" || machine == "i486" || machine == "i586" || machine == "i686") {
    p.architecture = "386";
  } else {
    p.architecture = machine;
  }
  return Normalize(std::move(p));
}

Platform Normalize(Platform p) {
  p.os = ToLower(p.os);
  if (p.os == "macos") p.os = "darwin";
  std::string arch = ToLower(p.architecture);
  p.variant = VariantWithV(ToLower(p.variant));
  if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (p.variant == "v1") p.variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (p.variant.empty() || p.variant == "v8.0") p.variant = "v8";
  } else if (arch == "armhf") {
    arch = "arm";
    if (p.variant.empty()) p.variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    if (p.variant.empty()) p.variant = "v6";
  } else if (arch == "i386" || arch == "i686" || arch == "x86") {
    arch = "386";
  }
  p.architecture = std::move(arch);
  return p;
}

Result<Platform> ParsePlatform(std::string_view text) {
  std::vector<std::string_view> parts = Split(text, '/');
  if (parts.size() < 2 || parts.size() > 3) {
    return InvalidArgumentError("platform " + Quote(text) +
                                " is not of the form os/arch[/variant]");
  }
  for (std::string_view part : parts) {
    if (!IsPlatformPart(part)) {
      return InvalidArgumentError("platform " + Quote(text) + " has an empty or invalid part");
    }
  }
  Platform p;
  p.os = std::string(parts[0]);
  p.architecture = std::string(parts[1]);
  if (parts.size() == 3) p.variant = std::string(parts[2]);
  return Normalize(std::move(p));
}

bool Matches(const Platform& want, const Platform& have) {
  Platform w = Normalize(want);
  Platform h = Normalize(have);
  if (w.os != h.os || w.architecture != h.architecture) return false;
  if (w.variant.empty()) return true;
  if (h.architecture == "arm" && h.variant.empty()) h.variant = "v7";
  return w.variant == h.variant;
}

Result<Descriptor> SelectPlatform(const Index& index, const Platform& want) {
  std::vector<std::string> available;
  for (const Descriptor& entry : index.manifests) {
    if (!entry.platform.has_value()) continue;
    if (!IsManifestType(entry.media_type)) continue;
    if (Matches(want, *entry.platform)) return entry;
    // Attestation manifests are listed with platform unknown/unknown: not worth naming.
    if (entry.platform->os == "unknown" || entry.platform->architecture == "unknown") continue;
    // Names come from the registry: escaped, as anything it says that reaches a terminal.
    std::string name = TerminalSafe(entry.platform->String());
    bool listed = false;
    for (const std::string& a : available) listed = listed || a == name;
    if (!listed) available.push_back(std::move(name));
  }
  std::string message =
      "no manifest for platform " + TerminalSafe(want.String()) + " in index; available: ";
  if (available.empty()) {
    message += "none";
  } else {
    for (size_t i = 0; i < available.size(); ++i) {
      if (i > 0) message += ", ";
      message += available[i];
    }
  }
  return NotFoundError(std::move(message));
}

}  // namespace hoist::manifest

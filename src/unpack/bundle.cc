#include "unpack/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "unpack/path.h"

namespace hoist::unpack {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// The container's hostname (umoci writes its own name here; so do we).
constexpr std::string_view kHostname = "hoist";
constexpr size_t kMaxIdFileBytes = 16 << 20;
constexpr int kMaxSymlinks = 40;
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;  // runc's limit for ids without an entry

// The fields of an image config that the runtime config is made from. Absent and null JSON
// fields are empty here.
struct ImageConfig {
  std::string os, architecture, author;
  std::optional<std::string> created;
  std::string user, working_dir, stop_signal;
  std::vector<std::string> env, entrypoint, cmd;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // sorted
  std::vector<std::string> volumes;        // sorted
};

// ---- image config -----------------------------------------------------------------------

Status WrongType(std::string_view field, std::string_view want) {
  return DataLossError("image config: " + std::string(field) + " is not " + std::string(want));
}

Status GetString(const Json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return OkStatus();
  if (!it->is_string()) return WrongType(key, "a string");
  *out = it->get<std::string>();
  return OkStatus();
}

Status GetStringArray(const Json& obj, const char* key, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return OkStatus();
  if (!it->is_array()) return WrongType(key, "an array of strings");
  for (const Json& v : *it) {
    if (!v.is_string()) return WrongType(key, "an array of strings");
    out->push_back(v.get<std::string>());
  }
  return OkStatus();
}

// The keys of a JSON object used as a set ({"80/tcp": {}}), sorted.
Status GetKeySet(const Json& obj, const char* key, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return OkStatus();
  if (!it->is_object()) return WrongType(key, "an object");
  for (auto member = it->begin(); member != it->end(); ++member) out->push_back(member.key());
  return OkStatus();  // nlohmann::json objects iterate in key order: already sorted
}

Status GetStringMap(const Json& obj, const char* key, std::map<std::string, std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return OkStatus();
  if (!it->is_object()) return WrongType(key, "an object of strings");
  for (auto member = it->begin(); member != it->end(); ++member) {
    if (!member->is_string()) return WrongType(key, "an object of strings");
    (*out)[member.key()] = member->get<std::string>();
  }
  return OkStatus();
}

Result<ImageConfig> ParseImageConfig(std::string_view text) {
  ASSIGN_OR_RETURN(Json doc, ParseJson(text, "image config"));
  if (!doc.is_object()) return DataLossError("image config is not a JSON object");
  ImageConfig c;
  RETURN_IF_ERROR(GetString(doc, "os", &c.os));
  RETURN_IF_ERROR(GetString(doc, "architecture", &c.architecture));
  RETURN_IF_ERROR(GetString(doc, "author", &c.author));
  auto created = doc.find("created");
  if (created != doc.end() && !created->is_null()) {
    if (!created->is_string()) return WrongType("created", "a string");
    c.created = created->get<std::string>();
  }
  auto config = doc.find("config");
  if (config == doc.end() || config->is_null()) return c;
  if (!config->is_object()) return WrongType("config", "an object");
  RETURN_IF_ERROR(GetString(*config, "User", &c.user));
  RETURN_IF_ERROR(GetString(*config, "WorkingDir", &c.working_dir));
  RETURN_IF_ERROR(GetString(*config, "StopSignal", &c.stop_signal));
  RETURN_IF_ERROR(GetStringArray(*config, "Env", &c.env));
  RETURN_IF_ERROR(GetStringArray(*config, "Entrypoint", &c.entrypoint));
  RETURN_IF_ERROR(GetStringArray(*config, "Cmd", &c.cmd));
  RETURN_IF_ERROR(GetStringMap(*config, "Labels", &c.labels));
  RETURN_IF_ERROR(GetKeySet(*config, "ExposedPorts", &c.exposed_ports));
  RETURN_IF_ERROR(GetKeySet(*config, "Volumes", &c.volumes));
  return c;
}

// ---- created time -----------------------------------------------------------------------

bool ParseDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int DaysIn(int month, int year) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// Re-formats an RFC 3339 time as Go's time.RFC3339Nano formats the parsed value (which is
// what umoci writes): the fraction truncated to nanoseconds with trailing zeros dropped, a
// zero offset written "Z". Absent: Go's zero time.
Result<std::string> FormatCreated(const std::optional<std::string>& created) {
  if (!created) return std::string("0001-01-01T00:00:00Z");
  std::string_view s = *created;
  auto bad = [&] {
    return InvalidArgumentError("image config: bad created time \"" + *created + "\"");
  };
  int year, month, day, hour, minute, second;
  if (!ParseDigits(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' ||
      !ParseDigits(s, 5, 2, &month) || s[7] != '-' || !ParseDigits(s, 8, 2, &day) || s[10] != 'T' ||
      !ParseDigits(s, 11, 2, &hour) || s[13] != ':' || !ParseDigits(s, 14, 2, &minute) ||
      s[16] != ':' || !ParseDigits(s, 17, 2, &second)) {
    return bad();
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysIn(month, year) || hour > 23 || minute > 59 ||
      second > 59) {
    return bad();
  }
  std::string out(s.substr(0, 19));
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad();
    std::string fraction(s.substr(start, std::min<size_t>(pos - start, 9)));
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    if (!fraction.empty()) out += "." + fraction;
  }
  std::string_view zone = s.substr(pos);
  int zone_hour, zone_minute;
  if (zone == "Z") {
    out += "Z";
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') &&
             ParseDigits(zone, 1, 2, &zone_hour) && zone[3] == ':' &&
             ParseDigits(zone, 4, 2, &zone_minute) && zone_hour < 24 && zone_minute < 60) {
    out += zone_hour == 0 && zone_minute == 0 ? std::string("Z") : std::string(zone);
  } else {
    return bad();
  }
  return out;
}

// ---- environment ------------------------------------------------------------------------

// Replaces the entry for NAME in `env`, or appends it.
void SetEnv(std::vector<std::string>* env, const std::string& name, const std::string& value) {
  std::string prefix = name + "=";
  for (std::string& entry : *env) {
    if (entry.compare(0, prefix.size(), prefix) == 0) {
      entry = prefix + value;
      return;
    }
  }
  env->push_back(prefix + value);
}

// ---- /etc/passwd and /etc/group, read inside the root -----------------------------------

Result<std::string> ReadAll(int fd, const std::string& what) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + what);
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxIdFileBytes) {
      return ResourceExhaustedError(what + " is larger than " + std::to_string(kMaxIdFileBytes) +
                                    " bytes");
    }
  }
}

// The contents of a file, or nullopt when it does not exist.
using MaybeFile = std::optional<std::string>;

// Reads the regular file at `path` inside the root, every symlink (the file's own included)
// resolved with the root as "/". nullopt when nothing exists there.
Result<MaybeFile> ReadFileInRoot(int root_fd, std::string_view path) {
  const std::string what = "rootfs " + std::string(path);
  ASSIGN_OR_RETURN(std::vector<std::string> components, SplitMemberPath(path));
  for (int links = 0;; ++links) {
    if (links > kMaxSymlinks) return ErrnoError(ELOOP, "resolve " + what);
    if (components.empty() || components.back() == "..") {
      return InvalidArgumentError(what + " is not a regular file");
    }
    std::string leaf = std::move(components.back());
    components.pop_back();
    Result<UniqueFd> parent = OpenDirInRoot(root_fd, components, /*create_missing=*/false);
    if (!parent.ok() && parent.status().code() == StatusCode::kNotFound) return MaybeFile();
    if (!parent.ok()) return parent.status().WithContext(what);
    struct stat st;
    if (fstatat(parent->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return MaybeFile();
      return ErrnoError(errno, "stat " + what);
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = readlinkat(parent->get(), leaf.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError(errno, "readlink " + what);
      if (static_cast<size_t>(n) >= target.size()) return ErrnoError(ENAMETOOLONG, what);
      target.resize(static_cast<size_t>(n));
      if (target.empty()) return MaybeFile();
      ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitMemberPath(target));
      if (target[0] == '/') components.clear();  // absolute: restart at the root
      components.insert(components.end(), parts.begin(), parts.end());
      continue;
    }
    if (!S_ISREG(st.st_mode)) return InvalidArgumentError(what + " is not a regular file");
    // O_NONBLOCK: if the entry was swapped for a FIFO since the stat, do not hang on it.
    UniqueFd fd(openat(parent->get(), leaf.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) return ErrnoError(errno, "open " + what);
    if (fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + what);
    if (!S_ISREG(st.st_mode)) return InvalidArgumentError(what + " is not a regular file");
    ASSIGN_OR_RETURN(std::string data, ReadAll(fd.get(), what));
    return MaybeFile(std::move(data));
  }
}

// The lines of a file as Go's bufio.ScanLines gives them: split on '\n', one trailing '\r'
// dropped.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines = Split(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (std::string_view& line : lines) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  }
  return lines;
}

std::string_view TrimAsciiSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// An id field of a passwd/group line: a decimal number that fits in 32 bits.
std::optional<uint32_t> ParseFileId(std::string_view s) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// An id in the User spec: a whole decimal number (a sign allowed, as strconv.Atoi does).
std::optional<int64_t> ParseSpecId(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

struct PasswdEntry {
  std::string name, home;
  uint32_t uid, gid;
};

struct GroupEntry {
  std::string name;
  uint32_t gid;
  std::vector<std::string> members;
};

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  for (std::string_view line : Lines(text)) {
    line = TrimAsciiSpace(line);
    if (line.empty()) continue;
    std::vector<std::string_view> f = Split(line, ':');
    f.resize(std::max<size_t>(f.size(), 7));
    std::optional<uint32_t> uid = ParseFileId(f[2]), gid = ParseFileId(f[3]);
    if (!uid || !gid) continue;
    out.push_back({std::string(f[0]), std::string(f[5]), *uid, *gid});
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> out;
  for (std::string_view line : Lines(text)) {
    if (line.empty()) continue;
    std::vector<std::string_view> f = Split(line, ':');
    f.resize(std::max<size_t>(f.size(), 4));
    std::optional<uint32_t> gid = ParseFileId(f[2]);
    if (!gid) continue;
    GroupEntry g{std::string(f[0]), *gid, {}};
    if (!f[3].empty()) {
      for (std::string_view m : Split(f[3], ',')) g.members.emplace_back(m);
    }
    out.push_back(std::move(g));
  }
  return out;
}

struct ExecUser {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home;
};

// Resolves a User spec as runc's GetExecUser does (see the header for the rules).
// `passwd`/`group` are nullopt when the file does not exist.
Result<ExecUser> ResolveUser(const std::string& spec, const MaybeFile& passwd,
                             const MaybeFile& group) {
  std::vector<std::string_view> parts = Split(spec, ':');
  std::string_view user_arg = parts[0];
  std::string_view group_arg = parts.size() > 1 ? parts[1] : std::string_view();
  std::optional<int64_t> uid_arg = ParseSpecId(user_arg), gid_arg = ParseSpecId(group_arg);
  const std::string context = "user \"" + spec + "\"";

  ExecUser out;
  std::string matched_name;
  bool matched = false;
  if (passwd) {
    for (const PasswdEntry& e : ParsePasswd(*passwd)) {
      bool hit = user_arg.empty() ? e.uid == 0 : uid_arg ? e.uid == *uid_arg : e.name == user_arg;
      if (!hit) continue;
      out.uid = e.uid;
      out.gid = e.gid;
      out.home = e.home;
      matched_name = e.name;
      matched = true;
      break;  // the first match wins
    }
  }
  if (!matched && !user_arg.empty()) {
    if (!uid_arg) {
      return InvalidArgumentError(context + ": no user named \"" + std::string(user_arg) +
                                  "\" in the rootfs's /etc/passwd");
    }
    if (*uid_arg < 0 || *uid_arg > kMaxId) {
      return InvalidArgumentError(context + ": uid out of range");
    }
    out.uid = static_cast<uint32_t>(*uid_arg);
  }

  if (group_arg.empty() && !matched) return out;
  std::vector<GroupEntry> groups;
  if (group) groups = ParseGroup(*group);
  if (!group_arg.empty()) {
    for (const GroupEntry& g : groups) {
      if (gid_arg ? g.gid == *gid_arg : g.name == group_arg) {
        out.gid = g.gid;
        return out;  // the first match wins
      }
    }
    if (!gid_arg) {
      return InvalidArgumentError(context + ": no group named \"" + std::string(group_arg) +
                                  "\" in the rootfs's /etc/group");
    }
    if (*gid_arg < 0 || *gid_arg > kMaxId) {
      return InvalidArgumentError(context + ": gid out of range");
    }
    out.gid = static_cast<uint32_t>(*gid_arg);
    return out;
  }
  // No explicit group: the supplementary groups are those that list the user by name.
  for (const GroupEntry& g : groups) {
    for (const std::string& member : g.members) {
      if (member == matched_name) {
        out.additional_gids.push_back(g.gid);
        break;
      }
    }
  }
  return out;
}

// ---- the runtime spec -------------------------------------------------------------------

OrderedJson Strings(std::initializer_list<const char*> items) {
  OrderedJson out = OrderedJson::array();
  for (const char* s : items) out.push_back(s);
  return out;
}

OrderedJson Mount(const char* destination, const char* type, const char* source,
                  std::initializer_list<const char*> options) {
  OrderedJson m;
  m["destination"] = destination;
  m["type"] = type;
  m["source"] = source;
  if (options.size() > 0) m["options"] = Strings(options);
  return m;
}

OrderedJson Capabilities() {
  OrderedJson set = Strings({"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"});
  OrderedJson caps;
  for (const char* kind : {"bounding", "effective", "inheritable", "permitted", "ambient"}) {
    caps[kind] = set;
  }
  return caps;
}

OrderedJson DefaultMounts() {
  OrderedJson mounts = OrderedJson::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {}));
  mounts.push_back(
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}));
  mounts.push_back(
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  mounts.push_back(Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  mounts.push_back(Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  mounts.push_back(
      Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  return mounts;
}

OrderedJson LinuxSection() {
  OrderedJson section;
  OrderedJson deny_all;
  deny_all["allow"] = false;
  deny_all["access"] = "rwm";
  section["resources"]["devices"] = OrderedJson::array({deny_all});
  OrderedJson namespaces = OrderedJson::array();
  for (const char* type : {"pid", "network", "ipc", "uts", "mount"}) {
    OrderedJson ns;
    ns["type"] = type;
    namespaces.push_back(ns);
  }
  section["namespaces"] = namespaces;
  section["maskedPaths"] =
      Strings({"/proc/kcore", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
               "/proc/sched_debug", "/sys/firmware", "/proc/scsi"});
  section["readonlyPaths"] = Strings(
      {"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
  return section;
}

}  // namespace

Result<std::string> RuntimeConfig(std::string_view image_config_json, int rootfs_fd) {
  ASSIGN_OR_RETURN(ImageConfig image, ParseImageConfig(image_config_json));
  if (image.os != "linux") return UnimplementedError("image os \"" + image.os + "\" is not linux");
  ASSIGN_OR_RETURN(std::string created, FormatCreated(image.created));

  std::vector<std::string> env = {std::string(kDefaultPath), "TERM=xterm"};
  for (const std::string& entry : image.env) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError("image config: bad Env entry \"" + entry + "\"");
    }
    SetEnv(&env, entry.substr(0, eq), entry.substr(eq + 1));
  }

  ASSIGN_OR_RETURN(MaybeFile passwd, ReadFileInRoot(rootfs_fd, "/etc/passwd"));
  ASSIGN_OR_RETURN(MaybeFile group, ReadFileInRoot(rootfs_fd, "/etc/group"));
  ASSIGN_OR_RETURN(ExecUser user, ResolveUser(image.user, passwd, group));
  if (!user.home.empty()) SetEnv(&env, "HOME", user.home);

  std::vector<std::string> args = image.entrypoint;
  args.insert(args.end(), image.cmd.begin(), image.cmd.end());
  if (args.empty()) args = {"sh"};

  OrderedJson spec;
  spec["ociVersion"] = "1.0.0";
  OrderedJson& process = spec["process"];
  process["terminal"] = true;
  process["user"]["uid"] = user.uid;
  process["user"]["gid"] = user.gid;
  if (!user.additional_gids.empty()) process["user"]["additionalGids"] = user.additional_gids;
  process["args"] = args;
  process["env"] = env;
  process["cwd"] = image.working_dir.empty() ? "/" : image.working_dir;
  process["capabilities"] = Capabilities();
  OrderedJson nofile;
  nofile["type"] = "RLIMIT_NOFILE";
  nofile["hard"] = 1024;
  nofile["soft"] = 1024;
  process["rlimits"] = OrderedJson::array({nofile});
  process["noNewPrivileges"] = true;
  spec["root"]["path"] = "rootfs";
  spec["root"]["readonly"] = false;
  spec["hostname"] = kHostname;
  OrderedJson mounts = DefaultMounts();
  for (const std::string& volume : image.volumes) {
    mounts.push_back(
        Mount(volume.c_str(), "tmpfs", "none", {"rw", "nosuid", "nodev", "noexec", "relatime"}));
  }
  spec["mounts"] = std::move(mounts);

  std::map<std::string, std::string> annotations = image.labels;
  std::string ports;
  for (const std::string& port : image.exposed_ports) ports += (ports.empty() ? "" : ",") + port;
  annotations["org.opencontainers.image.os"] = image.os;
  annotations["org.opencontainers.image.architecture"] = image.architecture;
  annotations["org.opencontainers.image.author"] = image.author;
  annotations["org.opencontainers.image.created"] = created;
  annotations["org.opencontainers.image.stopSignal"] = image.stop_signal;
  annotations["org.opencontainers.image.exposedPorts"] = ports;
  spec["annotations"] = annotations;
  spec["linux"] = LinuxSection();
  // Strings from /etc/passwd may be any bytes: invalid UTF-8 becomes U+FFFD (as Go's encoder
  // does) instead of an exception.
  return spec.dump(1, '\t', false, OrderedJson::error_handler_t::replace) + "\n";
}

}  // namespace hoist::unpack

// hoist: the command line. Parses arguments, renders progress and maps errors to one stderr
// line and an exit code; all the work is libhoist's. Every line it prints goes through
// TerminalSafe (JSON through TerminalSafeJson) as a last line of defence: whatever a registry or
// an image managed to put into a message, no control character reaches the terminal.
// Usage errors, examples, hoist(1) and completion scripts are generated from the CLI11
// definition below (help.cc, completion.cc).
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/strings.h"
#include "content/store.h"
#include "help.h"
#include "hoist/client.h"
#include "hoist/reference.h"
#include "hoist/version.h"
#include "progress_view.h"
#include "serve/broker.h"
#include "serve/server.h"

namespace {

std::atomic<bool> g_cancel{false};

void OnSignal(int) { g_cancel.store(true); }

constexpr int kExitFailure = 1;
constexpr int kExitCancelled = 130;

using hoist::TerminalSafe;
using hoist::cli::HumanSize;

// Multi-line text with each line made terminal-safe; the line breaks themselves are kept.
std::string TerminalSafeLines(std::string_view text) {
  std::string out;
  bool first = true;
  for (std::string_view line : hoist::Split(text, '\n')) {
    if (!first) out += '\n';
    first = false;
    out += TerminalSafe(line);
  }
  return out;
}

int Fail(const hoist::Status& s) {
  std::fprintf(stderr, "hoist: %s\n", TerminalSafe(s.message()).c_str());
  return s.code() == hoist::StatusCode::kCancelled ? kExitCancelled : kExitFailure;
}

nlohmann::json DescriptorJson(const hoist::Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest.String()}, {"size", d.size}};
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

nlohmann::json PlatformJson(const hoist::Platform& p) {
  nlohmann::json j = {{"os", p.os}, {"architecture", p.architecture}};
  if (!p.variant.empty()) j["variant"] = p.variant;
  return j;
}

struct Globals {
  std::string store;
  std::vector<std::string> insecure;
  std::string creds;
  std::string tls_verify;  // "", "true", "false"
  std::string cert_dir;
  uint64_t max_layer_size = 0;   // 0: the library's default
  uint64_t max_image_size = 0;   // 0: the library's default
  uint64_t max_zstd_window = 0;  // 0: the library's default
  int retries = -1;              // -1: the library's default
  int64_t retry_max_seconds = -1;
  std::string signature_policy;
  std::string registries_d;
};

constexpr const char* kMaxZstdWindowHelp =
    "Refuse a zstd layer whose frames need a larger window (the memory inflating it takes; "
    "default 32MiB; `zstd --long` needs 128MiB)";

hoist::Result<std::unique_ptr<hoist::Client>> OpenClient(const Globals& g) {
  hoist::ClientOptions o;
  o.store_dir = g.store.empty() ? hoist::DefaultStoreDir() : g.store;
  o.insecure_registries = g.insecure;
  o.credentials = g.creds;
  if (g.max_layer_size != 0) o.max_layer_bytes = g.max_layer_size;
  if (g.max_image_size != 0) o.max_image_bytes = g.max_image_size;
  if (g.max_zstd_window != 0) o.max_zstd_window_bytes = g.max_zstd_window;
  if (g.retries >= 0) o.retries = g.retries;
  if (g.retry_max_seconds >= 0) o.retry_max_seconds = g.retry_max_seconds;
  if (g.tls_verify == "true") o.tls_verify = hoist::ClientOptions::TlsVerify::kAlways;
  if (g.tls_verify == "false") o.tls_verify = hoist::ClientOptions::TlsVerify::kNever;
  o.cert_dir = g.cert_dir;
  o.signature_policy = g.signature_policy;
  o.registries_d = g.registries_d;
  if (o.credentials.empty()) {
    if (const char* env = std::getenv("HOIST_CREDS"); env != nullptr) o.credentials = env;
  }
  return hoist::Client::Open(std::move(o));
}

// Pulls ref_text; with `rootfs`, then writes the image's flattened root filesystem there (as
// `hoist unpack` does).
int Pull(const Globals& g, const std::string& ref_text, const std::string& platform, int jobs,
         bool quiet, const std::string& progress_flag, const std::string& rootfs) {
  std::unique_ptr<hoist::cli::ProgressView> view;
  if (!quiet) {
    view = hoist::cli::ProgressView::Create(
        hoist::cli::ProgressModeFor(progress_flag, STDOUT_FILENO), stdout);
  }
  auto fail = [&](const hoist::Status& s) {
    if (view) view->Failed(s);
    return Fail(s);
  };
  auto ref = hoist::Reference::Parse(ref_text);
  if (!ref.ok()) return fail(ref.status().WithContext("pull " + ref_text));
  auto client = OpenClient(g);
  if (!client.ok()) return fail(client.status().WithContext("pull " + ref_text));
  hoist::PullOptions options;
  options.platform = platform;
  options.jobs = jobs;
  options.cancel = &g_cancel;
  options.notice = [](const std::string& line) {
    std::fprintf(stderr, "hoist: %s\n", TerminalSafe(line).c_str());
  };
  if (view) {
    view->Start(*ref);
    options.progress = [&](const hoist::ProgressEvent& e) { view->Event(e); };
    options.notice = [&](const std::string& line) { view->Notice(line); };
  }
  auto image = (*client)->Pull(ref_text, options);
  if (!image.ok()) return fail(image.status());
  if (!rootfs.empty()) {
    hoist::Status s = (*client)->Unpack(ref_text, rootfs);
    if (!s.ok()) return fail(s);
  }
  if (view) {
    view->Done(*ref, *image);
    return 0;
  }
  std::string pinned = ref->Name() + (ref->tag().empty() ? "" : ":" + ref->tag()) + "@" +
                       image->repo_digest.String();
  std::printf("%s\n", TerminalSafe(pinned).c_str());
  return 0;
}

// A line from the terminal, without echo when `secret`.
std::string Prompt(const char* what, bool secret) {
  std::fprintf(stderr, "%s", what);
  termios old{};
  bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty && secret) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty && secret) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int Login(const Globals& g, const std::string& registry, std::string user, std::string password,
          bool password_stdin) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("login " + registry));
  if (password_stdin) {
    if (user.empty()) {
      return Fail(hoist::InvalidArgumentError("login: --password-stdin needs --username"));
    }
    std::getline(std::cin, password);
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
  } else {
    if (user.empty()) user = Prompt("Username: ", false);
    if (password.empty()) password = Prompt("Password: ", true);
  }
  hoist::Status s = (*client)->Login(registry, user, password);
  if (!s.ok()) return Fail(s);
  std::printf("Login Succeeded\n");
  return 0;
}

// ---- images, inspect, tag ----

// The value at a JSON pointer (RFC 6901), one line: a string as its text, anything else as
// compact JSON; both terminal-safe. NotFound when the document has no such member.
hoist::Result<std::string> PointerValue(const nlohmann::json& doc, const std::string& pointer) {
  nlohmann::json::json_pointer p(pointer);  // syntax checked by the option's validator
  if (!doc.contains(p)) {
    return hoist::NotFoundError("--format " + hoist::Quote(pointer) + ": no such field");
  }
  const nlohmann::json& v = doc.at(p);
  if (v.is_string()) return TerminalSafe(v.get<std::string>());
  return hoist::TerminalSafeJson(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// CLI11 validator for --format values that are JSON pointers (and, for images, table/json).
CLI::Validator FormatValidator(std::vector<std::string> words) {
  return CLI::Validator(
      [words](std::string& value) -> std::string {
        for (const auto& w : words) {
          if (value == w) return "";
        }
        try {
          nlohmann::json::json_pointer p(value);
          if (!value.empty()) return "";
        } catch (const nlohmann::json::exception&) {
        }
        std::string want;
        for (const auto& w : words) want += w + ", ";
        return "must be " + (want.empty() ? "" : want + "or ") +
               "a JSON pointer (RFC 6901) such as /a/b/0, got " + hoist::Quote(value);
      },
      "FORMAT");
}

// Seconds since the epoch of an RFC 3339 time ("2024-05-01T12:00:00.5Z", "...+02:00"), or -1.
int64_t ParseRfc3339(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return -1;
  }
  std::string_view rest = std::string_view(text).substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') rest.remove_prefix(1);
  }
  int64_t offset = 0;
  int oh = 0, om = 0;
  if (rest != "Z" && rest != "z") {
    if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') ||
        std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &oh, &om) != 2) {
      return -1;
    }
    offset = (rest[0] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  return t == -1 ? -1 : static_cast<int64_t>(t) - offset;
}

// docker's "2 weeks ago"; "N/A" when the image gives no usable time.
std::string HumanAge(const std::string& created) {
  int64_t t = ParseRfc3339(created);
  if (t < 0) return "N/A";
  int64_t s = static_cast<int64_t>(std::time(nullptr)) - t;
  if (s < 0) return "In the future";
  auto n = [](int64_t v, const char* unit) {
    return std::to_string(v) + " " + unit + (v == 1 ? "" : "s") + " ago";
  };
  if (s < 60) return n(s, "second");
  if (s < 3600) return n(s / 60, "minute");
  if (s < 48 * 3600) return n(s / 3600, "hour");
  if (s < 14 * 86400) return n(s / 86400, "day");
  if (s < 90 * 86400) return n(s / (7 * 86400), "week");
  if (s < 2 * 365 * 86400) return n(s / (30 * 86400), "month");
  return n(s / (365 * 86400), "year");
}

// One image as `images --format json` prints it. A record name that is not a valid reference
// (a hand-edited index.json) is shown whole as the repository, with no tag.
nlohmann::json ImageJson(const hoist::ImageSummary& i) {
  std::string repository = i.reference, tag;
  if (auto ref = hoist::Reference::Parse(i.reference); ref.ok()) {
    std::string familiar = ref->Familiar();
    size_t suffix = (ref->tag().empty() ? 0 : ref->tag().size() + 1) +
                    (ref->digest() ? ref->digest()->String().size() + 1 : 0);
    repository = familiar.substr(0, familiar.size() - suffix);
    tag = ref->tag();
  }
  return {{"reference", i.reference},
          {"repository", repository},
          {"tag", tag},
          {"digest", i.digest.String()},
          {"repoDigest", i.repo_digest.String()},
          {"size", i.size},
          {"created", i.created}};
}

// `images REF`: a reference with a tag or digest names one record; a bare name, every record
// of that repository (as `docker images NAME`).
bool MatchesFilter(const hoist::ImageSummary& i, const hoist::Reference& filter, bool exact) {
  auto ref = hoist::Reference::Parse(i.reference);
  if (!ref.ok()) return false;
  return exact ? ref->String() == filter.String() : ref->Name() == filter.Name();
}

// Rows padded to their columns' widths, three spaces apart, as docker prints tables.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 3, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

int Images(const Globals& g, const std::string& filter_text, bool digests,
           const std::string& format) {
  const std::string context = filter_text.empty() ? "images" : "images " + filter_text;
  std::optional<hoist::Reference> filter;
  bool exact = false;
  if (!filter_text.empty()) {
    auto ref = hoist::Reference::Parse(filter_text);
    if (!ref.ok()) return Fail(ref.status().WithContext(context));
    filter = *ref;
    std::string_view last = filter_text;
    last.remove_prefix(std::min(last.size(), last.rfind('/') + 1));
    exact = last.find_first_of(":@") != std::string_view::npos;
  }
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext(context));
  auto images = (*client)->Images();
  if (!images.ok()) return Fail(images.status().WithContext(context));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& i : *images) {
    if (!filter || MatchesFilter(i, *filter, exact)) list.push_back(ImageJson(i));
  }
  if (format == "json") {
    std::printf("%s\n", hoist::TerminalSafeJson(
                            list.dump(2, ' ', false, nlohmann::json::error_handler_t::replace))
                            .c_str());
    return 0;
  }
  if (format != "table") {
    for (const auto& j : list) {
      auto value = PointerValue(j, format);
      if (!value.ok()) return Fail(value.status().WithContext(context));
      std::printf("%s\n", value->c_str());
    }
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"}};
  for (const auto& j : list) {
    std::string tag = j["tag"];
    auto digest = hoist::Digest::Parse(j["repoDigest"].get<std::string>());
    rows.push_back({TerminalSafe(j["repository"].get<std::string>()),
                    tag.empty() ? "<none>" : TerminalSafe(tag),
                    digest.ok() ? (digests ? digest->String() : digest->hex().substr(0, 12)) : "",
                    HumanSize(j["size"].get<int64_t>()), HumanAge(j["created"])});
  }
  PrintTable(rows);
  return 0;
}

// A document as stored (manifest or config): its exact bytes when stdout is not a terminal, so
// that it can be hashed or parsed; on a terminal, with whatever could drive it escaped.
void WriteDocument(const std::string& bytes) {
  if (isatty(STDOUT_FILENO)) {
    std::string safe = hoist::TerminalSafeJson(bytes);
    std::printf("%s%s", safe.c_str(), !safe.empty() && safe.back() == '\n' ? "" : "\n");
    return;
  }
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
}

int Tag(const Globals& g, const std::string& source, const std::string& target) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("tag " + source + " " + target));
  hoist::Status s = (*client)->Tag(source, target);
  return s.ok() ? 0 : Fail(s);
}

std::string VersionText() {
  std::string text = "hoist " + hoist::Version();
  for (const auto& lib : hoist::LinkedLibraryVersions()) {
    text +=
        "\n" + lib.name + " " + TerminalSafe(lib.version) + (lib.run_time ? "" : " (build time)");
  }
  return text;
}

nlohmann::json InspectJson(const hoist::Image& image) {
  nlohmann::json j;
  j["reference"] = image.reference;
  j["digest"] = image.manifest.digest.String();
  j["repoDigest"] = image.repo_digest.String();
  j["mediaType"] = image.manifest.media_type;
  j["platform"] = PlatformJson(image.platform);
  if (!image.config.digest.empty()) {
    j["config"] = DescriptorJson(image.config);
    auto config = hoist::ParseJson(image.config_json, "config");
    if (config.ok()) j["configData"] = std::move(config).value();
  }
  j["layers"] = nlohmann::json::array();
  for (const auto& l : image.layers) j["layers"].push_back(DescriptorJson(l));
  return j;
}

struct InspectFlags {
  std::string format;   // a JSON pointer into the JSON inspect prints; "" for all of it
  bool raw = false;     // the manifest as stored
  bool config = false;  // the config blob as stored
};

int Inspect(const Globals& g, const std::string& ref_text, const InspectFlags& flags) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("inspect " + ref_text));
  auto image = (*client)->Inspect(ref_text);
  if (!image.ok()) return Fail(image.status());
  if (flags.raw) {
    WriteDocument(image->manifest_json);
    return 0;
  }
  if (flags.config) {
    if (image->config.digest.empty()) {
      return Fail(
          hoist::NotFoundError("inspect " + ref_text + ": a schema1 image has no config blob"));
    }
    WriteDocument(image->config_json);
    return 0;
  }
  nlohmann::json j = InspectJson(*image);
  if (!flags.format.empty()) {
    auto value = PointerValue(j, flags.format);
    if (!value.ok()) return Fail(value.status().WithContext("inspect " + ref_text));
    std::printf("%s\n", value->c_str());
    return 0;
  }
  // Strings the image carries are escaped as JSON (control characters as \u00NN, invalid UTF-8
  // as U+FFFD), then C1 controls, DEL and bidi overrides too, which JSON allows raw.
  std::printf("%s\n", hoist::TerminalSafeJson(
                          j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace))
                          .c_str());
  return 0;
}

int RemoveImages(const Globals& g, const std::vector<std::string>& refs) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("rmi"));
  int rc = 0;
  for (const std::string& ref : refs) {
    auto name = (*client)->RemoveImage(ref);
    if (!name.ok()) {
      rc = Fail(name.status());
      continue;
    }
    std::printf("Untagged: %s\n", TerminalSafe(*name).c_str());
  }
  return rc;
}

std::string Counted(const hoist::SpaceUsage& u, const char* what) {
  return std::to_string(u.count) + " " + what + " (" + HumanSize(u.bytes) + ")";
}

int GarbageCollect(const Globals& g, const hoist::GcOptions& options) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("gc"));
  auto r = (*client)->GarbageCollect(options);
  if (!r.ok()) return Fail(r.status());
  std::printf("Deleted %s, %s, %s, %s, %s\n", Counted(r->blobs, "blobs").c_str(),
              Counted(r->layers, "layers").c_str(), Counted(r->ingest, "partial downloads").c_str(),
              Counted(r->staging, "unfinished extractions").c_str(),
              Counted(r->mounts, "mount leftovers").c_str());
  std::printf("Total reclaimed space: %s\n", HumanSize(r->bytes()).c_str());
  return 0;
}

int Verify(const Globals& g, const std::vector<std::string>& refs, bool repair) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("verify"));
  hoist::VerifyOptions options;
  options.repair = repair;
  auto r = (*client)->Verify(refs, options);
  if (!r.ok()) return Fail(r.status());
  for (const auto& p : r->problems) {
    std::printf("%s %s: %s%s\n", p.kind.c_str(), p.digest.String().c_str(),
                TerminalSafe(p.message).c_str(), p.removed ? " (removed)" : "");
  }
  std::printf("Verified %lld blobs and %lld layers: %zu problem%s\n",
              static_cast<long long>(r->blobs), static_cast<long long>(r->layers),
              r->problems.size(), r->problems.size() == 1 ? "" : "s");
  return r->problems.empty() ? 0 : kExitFailure;
}

int DiskUsage(const Globals& g, const hoist::GcOptions& options) {
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("df"));
  auto u = (*client)->Usage(options);
  if (!u.ok()) return Fail(u.status());
  std::printf("%-8s %8s %10s %12s\n", "TYPE", "COUNT", "SIZE", "RECLAIMABLE");
  auto row = [](const char* type, const hoist::SpaceUsage& all, const hoist::SpaceUsage& gc) {
    std::printf("%-8s %8lld %10s %12s\n", type, static_cast<long long>(all.count),
                HumanSize(all.bytes).c_str(), HumanSize(gc.bytes).c_str());
  };
  row("Blobs", u->blobs, u->reclaimable.blobs);
  row("Layers", u->layers, u->reclaimable.layers);
  row("Ingest", u->ingest, u->reclaimable.ingest);
  std::printf("Reclaimable by hoist gc: %s\n", HumanSize(u->reclaimable.bytes()).c_str());
  return 0;
}

// Serves the store until SIGINT or SIGTERM; with `user`, from a process running as that user
// (serve/broker.h).
int Serve(const Globals& g, const hoist::serve::ServeOptions& options, const std::string& user) {
  const std::string dir = g.store.empty() ? hoist::DefaultStoreDir() : g.store;
  std::optional<hoist::serve::Identity> id;
  if (!user.empty()) {
    auto parsed = hoist::serve::ParseIdentity(user);
    if (!parsed.ok()) return Fail(parsed.status().WithContext("serve"));
    if (geteuid() != 0) {
      return Fail(hoist::FailedPreconditionError(
          "serve: --user needs root (it starts as root, then serves as " + hoist::Quote(user) +
          ")"));
    }
    id = *parsed;
  }
  // Serving never makes a store: a mistyped --store is an error, not an empty registry.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Fail(hoist::NotFoundError("serve: no store at " + hoist::Quote(dir) +
                                     " (pull an image into it first)"));
  }
  auto store = hoist::content::Store::Open(dir);
  if (!store.ok()) return Fail(store.status().WithContext("serve"));
  std::unique_ptr<hoist::serve::Server> server;
  auto run = [&](hoist::serve::StoreView& view) {
    if (hoist::Status s = server->Start(view); !s.ok()) return Fail(s);
    std::string listen = options.listen.substr(0, options.listen.rfind(':'));
    std::fprintf(stderr, "hoist: serving %s read-only on %s:%d%s\n",
                 TerminalSafe((*store)->layout().root()).c_str(), TerminalSafe(listen).c_str(),
                 server->port(), id ? (" as " + TerminalSafe(user)).c_str() : "");
    while (!g_cancel.load()) {
      struct timespec pause = {0, 100 * 1000 * 1000};
      nanosleep(&pause, nullptr);
    }
    server.reset();
    return 0;
  };
  if (id) {
    auto bind = [&]() -> hoist::Status {
      auto bound = hoist::serve::Server::Bind(options);
      if (!bound.ok()) return bound.status();
      server = std::move(*bound);
      return hoist::OkStatus();
    };
    auto code = hoist::serve::RunSeparated(**store, *id, g_cancel, bind, run);
    return code.ok() ? *code : Fail(code.status());
  }
  auto bound = hoist::serve::Server::Bind(options);
  if (!bound.ok()) return Fail(bound.status());
  server = std::move(*bound);
  auto view = hoist::serve::OpenStoreView(**store);
  return run(*view);
}

// ---- load, save, copy, push ----

// The progress of layers put into the store, a line per state change as a pull logs it, when
// stderr is a terminal (stdout may carry an archive); null when quiet or it is not.
std::unique_ptr<hoist::cli::ProgressView> TransferView(bool quiet, hoist::CopyOptions& o) {
  o.cancel = &g_cancel;
  o.notice = [](const std::string& line) {
    std::fprintf(stderr, "hoist: %s\n", TerminalSafe(line).c_str());
  };
  if (quiet || !isatty(STDERR_FILENO)) return nullptr;
  auto view = hoist::cli::ProgressView::Create(hoist::cli::ProgressMode::kPlain, stderr);
  o.progress = [v = view.get()](const hoist::ProgressEvent& e) { v->Event(e); };
  o.notice = [v = view.get()](const std::string& line) { v->Notice(line); };
  return view;
}

int Fail(hoist::cli::ProgressView* view, const hoist::Status& s) {
  if (view != nullptr) view->Failed(s);
  return Fail(s);
}

int Load(const Globals& g, const std::string& input, hoist::LoadOptions o, bool quiet) {
  if (input.empty() && o.layout.empty() && isatty(STDIN_FILENO)) {
    return Fail(hoist::InvalidArgumentError(
        "load: standard input is a terminal (give -i FILE, or redirect an archive into it)"));
  }
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("load"));
  auto view = TransferView(quiet, o);
  auto images = (*client)->Load(input.empty() && o.layout.empty() ? "-" : input, o);
  if (!images.ok()) return Fail(view.get(), images.status());
  for (const auto& image : *images) {
    std::printf("Loaded image: %s\n", TerminalSafe(image.reference).c_str());
  }
  return 0;
}

int Save(const Globals& g, const std::vector<std::string>& refs, const std::string& output,
         const std::string& format) {
  if (output.empty() && isatty(STDOUT_FILENO)) {
    return Fail(hoist::InvalidArgumentError(
        "save: refusing to write an archive to a terminal (give -o FILE, or redirect)"));
  }
  auto client = OpenClient(g);
  if (!client.ok()) return Fail(client.status().WithContext("save"));
  hoist::CopyOptions o;
  o.cancel = &g_cancel;
  hoist::Status s = (*client)->Save(refs, output.empty() ? "-" : output,
                                    format == "oci-archive" ? hoist::ArchiveFormat::kOciArchive
                                                            : hoist::ArchiveFormat::kDockerArchive,
                                    o);
  return s.ok() ? 0 : Fail(s);
}

// Whether a copy's destination is an archive written to standard output ("oci-archive:-").
bool WritesToStdout(const std::string& destination) {
  for (std::string_view prefix : {"oci-archive:", "docker-archive:"}) {
    if (destination.rfind(prefix, 0) == 0) {
      std::string_view rest = std::string_view(destination).substr(prefix.size());
      return rest.substr(0, rest.find(':')) == "-";
    }
  }
  return false;
}

// copy SRC DST, or push LOCAL [DEST] (when `push`): prints the digest copied, unless the archive
// itself goes to stdout.
int Copy(const Globals& g, const std::string& source, const std::string& destination,
         hoist::CopyOptions o, bool push, bool quiet) {
  auto client = OpenClient(g);
  if (!client.ok()) {
    return Fail(client.status().WithContext((push ? "push " : "copy ") + source));
  }
  auto view = TransferView(quiet, o);
  auto digest =
      push ? (*client)->Push(source, destination, o) : (*client)->Copy(source, destination, o);
  if (!digest.ok()) return Fail(view.get(), digest.status());
  if (!push && WritesToStdout(destination)) return 0;
  std::printf("%s\n", digest->String().c_str());
  return 0;
}

}  // namespace

static int Run(int argc, char** argv) {
  CLI::App app{"hoist: pull container images from registries into a verified local store", "hoist"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::function<std::string()>(VersionText),
                       "Print hoist's version and those of the libraries it uses");
  Globals g;
  app.add_option("--store", g.store,
                 "Store directory (default: $HOIST_STORE, /var/lib/hoist for root, else "
                 "${XDG_DATA_HOME:-~/.local/share}/hoist)");

  std::string ref, platform, pull_rootfs;
  int jobs = 4;
  bool quiet = false;
  auto* pull = app.add_subcommand("pull", "Pull an image from a registry into the store");
  pull->add_option("--platform", platform, "os/arch[/variant] (default: this host's)");
  pull->add_option("--jobs", jobs, "Blobs transferred at once")->check(CLI::Range(1, 64));
  pull->add_option("--insecure-registry", g.insecure,
                   "HOST[:PORT] reached without TLS verification (and over http if https fails)");
  pull->add_option("--creds", g.creds,
                   "USER:PASSWORD for the image's registry, never its mirrors (or $HOIST_CREDS)");
  pull->add_flag("-q,--quiet", quiet, "Print only the pulled reference with its digest");
  pull->add_option("--rootfs", pull_rootfs,
                   "Then write the flattened root filesystem into this new directory (as "
                   "hoist unpack does)");
  std::string progress = "auto";
  pull->add_option("--progress", progress,
                   "auto (tty on a terminal, else plain), tty (live bars), plain (a line per "
                   "state change) or json (an object per event, see the README)")
      ->check(CLI::IsMember({"auto", "tty", "plain", "json"}));
  pull->add_option("--tls-verify", g.tls_verify,
                   "true: verify TLS everywhere, loopback included, and never use plain http; "
                   "false: verify nowhere and allow plain http (default: per registry)")
      ->check(CLI::IsMember({"true", "false"}));
  pull->add_option("--cert-dir", g.cert_dir,
                   "Use *.crt CAs and *.cert/*.key client pairs from DIR for every registry");
  pull->add_option("--max-layer-size", g.max_layer_size,
                   "Refuse a layer whose tar is larger than this (e.g. 16GiB; default 64GiB)")
      ->transform(CLI::AsSizeValue(false));
  pull->add_option("--max-image-size", g.max_image_size,
                   "Refuse an image whose layers hold more file data than this (default 128GiB)")
      ->transform(CLI::AsSizeValue(false));
  pull->add_option("--max-zstd-window", g.max_zstd_window, kMaxZstdWindowHelp)
      ->transform(CLI::AsSizeValue(false));
  pull->add_option("--retries", g.retries,
                   "Retry a failed request (reset, timeout, 408, 429, 5xx) up to N times, "
                   "resuming interrupted blobs (default 5)")
      ->check(CLI::Range(0, 100));
  pull->add_option("--retry-max-time", g.retry_max_seconds,
                   "Stop retrying a request this long after its first attempt (e.g. 90s, 10m; "
                   "default 10m)")
      ->transform(
          CLI::AsNumberWithUnit(std::map<std::string, int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}}))
      ->check(CLI::NonNegativeNumber);
  pull->add_option("REF", ref, "Image reference, e.g. alpine:3.20 or ghcr.io/org/app@sha256:…")
      ->required();

  std::string images_ref, images_format = "table";
  bool digests = false;
  auto* images = app.add_subcommand("images", "List the images in the store");
  images->add_flag("--digests", digests, "Show full digests (sha256:...) instead of short ones");
  images
      ->add_option("--format", images_format,
                   "table, json, or a JSON pointer into each image's JSON object, printed one "
                   "a line (e.g. /reference)")
      ->check(FormatValidator({"table", "json"}));
  images->add_option("REF", images_ref,
                     "Only this repository (NAME: all its tags) or image (NAME:TAG, NAME@DIGEST)");

  std::string inspect_ref;
  InspectFlags inspect_flags;
  auto* inspect = app.add_subcommand("inspect", "Print an image of the store as JSON");
  auto* inspect_format =
      inspect
          ->add_option("--format", inspect_flags.format,
                       "Print one field: a JSON pointer (RFC 6901) into the JSON, e.g. "
                       "/configData/config/Env; strings as text, the rest as JSON")
          ->check(FormatValidator({}));
  auto* inspect_raw =
      inspect->add_flag("--raw", inspect_flags.raw, "Print the manifest exactly as stored");
  inspect->add_flag("--config", inspect_flags.config, "Print the config blob exactly as stored")
      ->excludes(inspect_format)
      ->excludes(inspect_raw);
  inspect_format->excludes(inspect_raw);
  inspect->add_option("REF", inspect_ref, "Image reference")->required();

  std::string tag_source, tag_target;
  auto* tag = app.add_subcommand(
      "tag", "Record another name for an image of the store (the same manifest, nothing copied)");
  tag->add_option("SRC", tag_source, "Image reference, as pulled")->required();
  tag->add_option("DST", tag_target, "New reference: NAME[:TAG]")->required();

  std::string unpack_ref, unpack_dest;
  bool bundle = false, from_blobs = false;
  auto* unpack = app.add_subcommand("unpack", "Write an image's root filesystem into a directory");
  unpack->add_flag("--bundle", bundle,
                   "Write an OCI runtime bundle (DEST/rootfs and DEST/config.json)");
  unpack->add_flag("--from-blobs", from_blobs,
                   "Extract every layer blob again instead of merging the store's layer "
                   "directories (slower; the same tree)");
  unpack
      ->add_option("--max-layer-size", g.max_layer_size,
                   "Refuse a layer whose tar is larger than this (default 64GiB)")
      ->transform(CLI::AsSizeValue(false));
  unpack
      ->add_option("--max-image-size", g.max_image_size,
                   "Refuse an image whose layers hold more file data than this (default 128GiB)")
      ->transform(CLI::AsSizeValue(false));
  unpack->add_option("--max-zstd-window", g.max_zstd_window, kMaxZstdWindowHelp)
      ->transform(CLI::AsSizeValue(false));
  unpack->add_option("REF", unpack_ref, "Image reference (pulled already)")->required();
  unpack->add_option("DEST", unpack_dest, "Destination: absent or an empty directory")->required();

  std::string mount_ref, mount_target;
  bool rw = false;
  auto* mount = app.add_subcommand("mount", "Mount an image's layers as an overlay (root only)");
  mount->add_flag("--rw", rw, "Writable, with scratch upper and work dirs in the store");
  mount->add_option("REF", mount_ref, "Image reference (pulled already, as root)")->required();
  mount->add_option("TARGET", mount_target, "An existing directory")->required();

  std::string umount_target;
  auto* umount = app.add_subcommand("umount", "Unmount what `hoist mount` mounted");
  umount->add_option("TARGET", umount_target, "The mount point")->required();

  std::string login_registry, login_user, login_password;
  bool password_stdin = false;
  auto* login = app.add_subcommand("login", "Store credentials for a registry, as docker login");
  login->add_option("-u,--username", login_user, "User name");
  login->add_option("-p,--password", login_password, "Password (prefer --password-stdin)");
  login->add_flag("--password-stdin", password_stdin, "Read the password from standard input");
  login->add_option("--tls-verify", g.tls_verify, "true or false (see pull)")
      ->check(CLI::IsMember({"true", "false"}));
  login->add_option("--cert-dir", g.cert_dir, "CA and client certificates for the registry");
  login->add_option("REGISTRY", login_registry, "Registry (default: docker.io)");

  std::string logout_registry;
  auto* logout = app.add_subcommand("logout", "Remove stored credentials for a registry");
  logout->add_option("REGISTRY", logout_registry, "Registry (default: docker.io)");

  std::string config_ref;
  auto* config = app.add_subcommand(
      "config", "Print the effective registry settings for a reference (never a secret)");
  config->add_option("--tls-verify", g.tls_verify, "true or false (see pull)")
      ->check(CLI::IsMember({"true", "false"}));
  config->add_option("--cert-dir", g.cert_dir, "CA and client certificates for every registry");
  config->add_option("REF", config_ref, "Image reference")->required();

  std::string trust_ref;
  auto* trust = app.add_subcommand("trust", "Signature policy: what an image must satisfy");
  trust->require_subcommand(1);
  auto* trust_show = trust->add_subcommand(
      "show", "Print the policy scope, requirements, keys and signature sources for a reference");
  trust_show->add_option("REF", trust_ref, "Image reference")->required();

  std::string load_input;
  hoist::LoadOptions load_options;
  bool load_quiet = false;
  auto* load = app.add_subcommand(
      "load", "Load images from a docker-archive or oci-archive (or an OCI layout) into the store");
  load->add_option("-i,--input", load_input,
                   "Archive to read; - (the default) is standard input; gzip and zstd are "
                   "detected");
  load->add_option("--input-layout", load_options.layout,
                   "DIR[:TAG]: an OCI image layout directory instead of an archive")
      ->excludes("--input");
  load->add_option("--tag", load_options.tag,
                   "Record the image under this name (needed when the archive names none)");
  load->add_flag("-q,--quiet", load_quiet, "No progress; only the Loaded image: lines");

  std::vector<std::string> save_refs;
  std::string save_output, save_format = "docker-archive";
  auto* save = app.add_subcommand(
      "save", "Write images of the store into one archive (blobs they share written once)");
  save->add_option("-o,--output", save_output, "Archive to write; - or none: standard output");
  save->add_option("--format", save_format,
                   "docker-archive (the default, as docker) or oci-archive")
      ->check(CLI::IsMember({"docker-archive", "oci-archive"}));
  save->add_option("REF", save_refs, "Images of the store")->required();

  // Flags for the commands that may talk to a registry.
  auto add_registry_flags = [&](CLI::App* cmd) {
    cmd->add_option("--creds", g.creds, "USER:PASSWORD for the registry (or $HOIST_CREDS)");
    cmd->add_option("--insecure-registry", g.insecure,
                    "HOST[:PORT] reached without TLS verification (and over http if https fails)");
    cmd->add_option("--tls-verify", g.tls_verify, "true or false (see pull)")
        ->check(CLI::IsMember({"true", "false"}));
    cmd->add_option("--cert-dir", g.cert_dir, "CA and client certificates for every registry");
  };
  hoist::CopyOptions copy_options;
  bool copy_quiet = false;
  auto add_copy_flags = [&](CLI::App* cmd) {
    cmd->add_flag("--all", copy_options.all_platforms,
                  "A multi-platform image: every platform and the index (default: one platform)");
    cmd->add_option("--platform", copy_options.platform, "os/arch[/variant] (default: this host's)")
        ->excludes("--all");
    cmd->add_option("--jobs", copy_options.jobs, "Blobs copied at once")->check(CLI::Range(1, 64));
    cmd->add_flag("-q,--quiet", copy_quiet, "No progress; only the digest copied");
    add_registry_flags(cmd);
  };
  std::string copy_src, copy_dst;
  auto* copy = app.add_subcommand(
      "copy",
      "Copy an image between transports: docker://, oci:, oci-archive:, docker-archive:, "
      "hoist: (the store)");
  add_copy_flags(copy);
  copy->add_option("SRC", copy_src, "Source, e.g. docker://alpine:3.20 or oci:DIR:TAG")->required();
  copy->add_option("DST", copy_dst, "Destination, e.g. oci-archive:alpine.tar or hoist:alpine")
      ->required();

  // As skopeo: --policy is global; --registries.d is global and on the commands that read it.
  for (CLI::App* cmd : {&app, pull, config, trust, trust_show, copy}) {
    cmd->add_option("--signature-policy", g.signature_policy,
                    "containers-policy.json(5) file (default: ~/.config/containers/policy.json, "
                    "else /etc/containers/policy.json)");
    cmd->add_option("--registries.d", g.registries_d,
                    "Directory of registries.d YAML files saying where signatures are "
                    "(default: ~/.config/containers/registries.d, else "
                    "/etc/containers/registries.d)");
  }

  std::string push_ref, push_dest;
  auto* push = app.add_subcommand("push", "Push an image of the store to a registry");
  add_copy_flags(push);
  push->add_option("REF", push_ref, "Image of the store")->required();
  push->add_option("DEST", push_dest, "Registry reference (default: REF)");

  std::vector<std::string> rmi_refs;
  auto* rmi = app.add_subcommand(
      "rmi", "Remove image records (their blobs and layers stay until hoist gc)");
  rmi->add_option("REF", rmi_refs, "Image references, as pulled")->required();

  hoist::GcOptions gc_options;
  auto add_gc_flags = [&](CLI::App* cmd) {
    cmd->add_option("--ingest-max-age", gc_options.ingest_max_age_seconds,
                    "Seconds after which an unlocked partial download is stale (default 3600)")
        ->check(CLI::NonNegativeNumber);
  };
  auto* gc = app.add_subcommand(
      "gc", "Remove blobs, layers, partial downloads and mount leftovers no image needs");
  add_gc_flags(gc);
  gc->add_option("--timeout", gc_options.lock_timeout_seconds,
                 "Seconds to wait for pulls in progress to finish (default 600)")
      ->check(CLI::NonNegativeNumber);

  std::vector<std::string> verify_refs;
  bool repair = false;
  auto* verify = app.add_subcommand(
      "verify", "Re-hash the store's blobs and check its layer directories; exit 1 on a problem");
  verify->add_flag("--repair", repair,
                   "Remove what is corrupt, so that the next pull fetches it again");
  verify->add_option("--max-zstd-window", g.max_zstd_window, kMaxZstdWindowHelp)
      ->transform(CLI::AsSizeValue(false));
  verify->add_option("REF", verify_refs, "Images to check (default: the whole store)");

  auto* df = app.add_subcommand("df", "Show the store's usage and what hoist gc would reclaim");
  add_gc_flags(df);

  hoist::serve::ServeOptions serve_options;
  std::string serve_user;
  auto* serve = app.add_subcommand(
      "serve",
      "Serve the store read-only over the OCI distribution API (a mirror for other nodes)");
  serve->add_option("--listen", serve_options.listen,
                    "ADDR:PORT to listen on (default 127.0.0.1:5000; port 0: a free one)");
  serve->add_option("--tls-cert", serve_options.tls_cert, "Serve https with this PEM certificate")
      ->check(CLI::ExistingFile);
  serve->add_option("--tls-key", serve_options.tls_key, "The certificate's PEM private key")
      ->check(CLI::ExistingFile);
  serve
      ->add_option("--tls-client-ca", serve_options.tls_client_ca,
                   "Require a client certificate issued by this PEM CA (mTLS; needs --tls-cert)")
      ->check(CLI::ExistingFile);
  serve
      ->add_option("--htpasswd", serve_options.htpasswd,
                   "Require Basic auth with an account of this file (bcrypt: htpasswd -B)")
      ->check(CLI::ExistingFile);
  serve->add_flag("--anonymous", serve_options.allow_anonymous_remote,
                  "Allow a non-loopback --listen without --htpasswd or --tls-client-ca");
  serve->add_option("--access-log", serve_options.access_log,
                    "Append a line per request to this file (-: standard error)");
  serve
      ->add_option("--max-connections", serve_options.max_connections,
                   "Connections at once (default 256)")
      ->check(CLI::Range(1, 65536));
  serve
      ->add_option("--max-connections-per-ip", serve_options.max_connections_per_ip,
                   "Connections at once from one client address (default 64)")
      ->check(CLI::Range(1, 65536));
  serve->add_option("--user", serve_user,
                    "Started as root: serve from a process running as USER[:GROUP], which gets "
                    "each blob from the root process (the store stays root's alone)");

  std::string completion_shell;
  auto* completion = app.add_subcommand(
      "completion", "Print a shell completion script (commands, flags, images in the store)");
  completion->add_option("SHELL", completion_shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));

  // Hidden: `help --man` writes hoist(1) (the build runs it); `help CMD` is `CMD --help`.
  std::string help_command, man_output;
  bool man = false;
  auto* help = app.add_subcommand("help", "Show help, or write the man page")->group("");
  help->add_flag("--man", man, "Write hoist(1) in roff");
  help->add_option("-o,--output", man_output, "Write to this file instead of stdout");
  help->add_option("COMMAND", help_command, "The command to describe");

  hoist::cli::AddFooters(app);
  if (auto code = hoist::cli::ParseArguments(app, argc, argv)) return *code;
  if (*help) return hoist::cli::Help(app, help_command, man, man_output);
  if (*completion) {
    std::printf("%s", hoist::cli::CompletionScript(app, completion_shell).c_str());
    return 0;
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  if (*pull) return Pull(g, ref, platform, jobs, quiet, progress, pull_rootfs);
  if (*images) return Images(g, images_ref, digests, images_format);
  if (*inspect) return Inspect(g, inspect_ref, inspect_flags);
  if (*tag) return Tag(g, tag_source, tag_target);
  if (*rmi) return RemoveImages(g, rmi_refs);
  if (*load) return Load(g, load_input, load_options, load_quiet);
  if (*save) return Save(g, save_refs, save_output, save_format);
  if (*copy) return Copy(g, copy_src, copy_dst, copy_options, false, copy_quiet);
  if (*push) return Copy(g, push_ref, push_dest, copy_options, true, copy_quiet);
  if (*gc) return GarbageCollect(g, gc_options);
  if (*verify) return Verify(g, verify_refs, repair);
  if (*df) return DiskUsage(g, gc_options);
  if (*serve) return Serve(g, serve_options, serve_user);
  if (*login) return Login(g, login_registry, login_user, login_password, password_stdin);
  if (*trust) {
    auto client = OpenClient(g);
    if (!client.ok()) return Fail(client.status());
    auto text = (*client)->DescribeTrust(trust_ref);
    if (!text.ok()) return Fail(text.status());
    std::printf("%s", TerminalSafeLines(*text).c_str());
    return 0;
  }
  if (*logout || *config) {
    auto client = OpenClient(g);
    if (!client.ok()) return Fail(client.status());
    if (*logout) {
      hoist::Status s = (*client)->Logout(logout_registry);
      if (!s.ok()) return Fail(s);
      std::printf("Removing login credentials for %s\n",
                  logout_registry.empty() ? "docker.io" : TerminalSafe(logout_registry).c_str());
      return 0;
    }
    auto text = (*client)->DescribeConfig(config_ref);
    if (!text.ok()) return Fail(text.status());
    std::printf("%s", TerminalSafeLines(*text).c_str());
    return 0;
  }
  if (*unpack || *mount || *umount) {
    auto client = OpenClient(g);
    if (!client.ok()) return Fail(client.status());
    hoist::Status s;
    if (*unpack) {
      hoist::UnpackOptions o;
      o.bundle = bundle;
      o.from_blobs = from_blobs;
      s = (*client)->Unpack(unpack_ref, unpack_dest, o);
    } else if (*mount) {
      hoist::MountOptions o;
      o.writable = rw;
      s = (*client)->Mount(mount_ref, mount_target, o);
    } else {
      s = (*client)->Unmount(umount_target);
    }
    return s.ok() ? 0 : Fail(s);
  }
  return kExitFailure;
}

int main(int argc, char** argv) {
  // libhoist returns errors as values; this catches what the C++ runtime itself may throw
  // (std::bad_alloc), so that even that is one line on stderr and a non-zero exit.
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hoist: internal error: %s\n", TerminalSafe(e.what()).c_str());
    return kExitFailure;
  }
}

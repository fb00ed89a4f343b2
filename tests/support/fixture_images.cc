#include "support/fixture_images.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>

namespace hoist::testing {
namespace {

constexpr long long kBaseMtime = 1704067200;  // 2024-01-01T00:00:00Z

// splitmix64: a small deterministic generator.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// Text-like content of exactly `size` bytes (compressible, but not trivially).
std::string Content(Rng& rng, size_t size) {
  static const char* const kWords[] = {
      "alpha",  "bravo", "charlie", "delta", "echo",     "foxtrot", "golf", "hotel",  "india",
      "juliet", "kilo",  "lima",    "mike",  "november", "oscar",   "papa", "quebec", "romeo"};
  std::string out;
  out.reserve(size + 16);
  while (out.size() < size) {
    out += kWords[rng.Below(std::size(kWords))];
    out += rng.Below(8) == 0 ? '\n' : ' ';
    if (rng.Below(16) == 0) out += std::to_string(rng.Next());
  }
  out.resize(size);
  return out;
}

// A size: mostly small, some empty, some medium, a few larger (about 800 bytes on average,
// so that thousands of files stay a few MB).
size_t PickSize(Rng& rng) {
  uint64_t r = rng.Below(100);
  if (r < 8) return 0;
  if (r < 85) return 1 + rng.Below(600);
  if (r < 99) return 600 + rng.Below(3500);
  return 10000 + rng.Below(20000);
}

struct DirMeta {
  int mode = 0755;
  int uid = 0;
  int gid = 0;
  std::vector<std::pair<std::string, std::string>> pax{};
};

// The metadata every layer gives a directory (so that all layers agree, as with docker).
const std::map<std::string, DirMeta>& SpecialDirs() {
  static const auto* dirs = new std::map<std::string, DirMeta>{
      {"srv/ro", {0555, 0, 0, {}}},
      {"home/user", {0750, 1000, 1000, {}}},
      {"tmp", {01777, 0, 0, {}}},
      {"usr/share/doc", {0755, 0, 0, {{"SCHILY.xattr.user.dirnote", "documentation"}}}},
  };
  return *dirs;
}

// Collects one layer's entries, listing each parent directory once before its first child.
class LayerBuilder {
 public:
  void Dir(const std::string& path, DirMeta meta) {
    Parents(path);
    if (!dirs_.insert(path).second) return;
    TarEntry e{path + "/", "", '5'};
    e.mode = meta.mode;
    e.uid = meta.uid;
    e.gid = meta.gid;
    e.mtime = kBaseMtime;
    e.pax = meta.pax;
    entries_.push_back(std::move(e));
  }
  void Dir(const std::string& path) {
    auto it = SpecialDirs().find(path);
    Dir(path, it != SpecialDirs().end() ? it->second : DirMeta{});
  }
  TarEntry& Add(TarEntry e) {
    Parents(e.path);
    if (e.mtime < 0) e.mtime = kBaseMtime + static_cast<long long>(entries_.size());
    entries_.push_back(std::move(e));
    return entries_.back();
  }
  TarEntry& File(const std::string& path, std::string content, int mode = 0644) {
    return Add(TarEntry{path, std::move(content), '0', "", mode});
  }
  std::vector<TarEntry> Take() { return std::move(entries_); }

 private:
  void Parents(const std::string& path) {
    for (size_t p = path.find('/'); p != std::string::npos && p + 1 < path.size();
         p = path.find('/', p + 1)) {
      std::string parent = path.substr(0, p);
      if (!dirs_.count(parent)) Dir(parent);
    }
  }
  std::set<std::string> dirs_;
  std::vector<TarEntry> entries_;
};

std::vector<TarEntry> Layer0(Rng& rng) {
  LayerBuilder b;
  for (const char* d : {"bin", "dev", "etc", "home/user", "run", "srv/ro", "tmp", "usr/bin",
                        "usr/lib", "var/empty", "usr/share/doc"}) {
    b.Dir(d);
  }
  // 1600 documentation files in 100 packages.
  for (int p = 0; p < 100; ++p) {
    std::string dir = "usr/share/doc/pkg" + std::to_string(p);
    for (int f = 0; f < 16; ++f) {
      b.File(dir + "/file" + std::to_string(f) + (f % 3 == 0 ? ".txt" : ""),
             Content(rng, PickSize(rng)));
    }
  }
  // 150 libraries, deeper.
  for (int i = 0; i < 150; ++i) {
    b.File("usr/lib/x86_64/lib" + std::to_string(i / 20) + "/libthing" + std::to_string(i) +
               ".so." + std::to_string(i % 4),
           Content(rng, PickSize(rng)), 0755);
  }
  b.File("etc/os-release", "NAME=hoist-test\nVERSION=1\n");
  b.File("etc/hosts", "127.0.0.1 localhost\n");
  b.File("etc/to-delete", "this file is whited out by layer 1\n");
  b.File("opt/old/a", "old a\n");
  b.File("opt/old/b", Content(rng, 3000));
  b.File("opt/old/sub/c", "old c\n");
  b.File("var/cache/old1", "old cache 1\n");
  b.File("var/cache/old2", Content(rng, 5000));
  b.File("var/cache/sub/old3", "old cache 3\n");
  b.File("var/cache/keepname", "lower version: replaced by the opaque layer's own file\n");
  // Hardlinks within the layer.
  b.File("usr/bin/tool", "#!/bin/sh\necho tool\n" + Content(rng, 4000), 0755);
  b.Add({"usr/bin/tool-hard", "", '1', "usr/bin/tool"});
  b.Add({"usr/bin/tool-hard2", "", '1', "usr/bin/tool"});
  // Special modes and owners.
  b.File("usr/bin/su", Content(rng, 2000), 04755);
  TarEntry& wall = b.File("usr/bin/wall", Content(rng, 1000), 02755);
  wall.gid = 5;
  TarEntry& profile = b.File("home/user/.profile", "export PS1='$ '\n", 0600);
  profile.uid = 1000;
  profile.gid = 1000;
  b.File("srv/ro/readme", "read-only directory\n", 0444);
  // Symlinks: relative, absolute, dangling, and one with a long target.
  b.Add({"bin/tool", "", '2', "../usr/bin/tool"});
  b.Add({"etc/abs-link", "", '2', "/etc/os-release"});
  b.Add({"etc/dangling", "", '2', "/nonexistent/target"});
  // xattrs.
  TarEntry& xf = b.File("etc/xattr-file", "has xattrs\n");
  xf.pax = {{"SCHILY.xattr.user.comment", "hello world"},
            {"SCHILY.xattr.user.binary", std::string("a\x01\x7f"
                                                     "b",
                                                     4)}};
  // Long names: a ustar prefix split, a component over 100 chars (PAX), a long hardlink and a
  // symlink with a target over 100 chars.
  const std::string split_dir = "usr/share/long/" + std::string(110, 'd');
  const std::string split_name = split_dir + "/file-with-split-name";
  b.File(split_name, "split\n");
  const std::string pax_name =
      "usr/share/long/" + std::string(120, 'n') + "/" + std::string(130, 'f');
  b.File(pax_name, "pax name\n");
  b.Add({"usr/share/long/hardlink-to-long", "", '1', pax_name});
  b.Add({"usr/share/long/symlink-long", "", '2', "/" + split_name});
  // A fifo and a character device.
  b.Add({"run/fifo", "", '6', "", 0600});
  TarEntry& null = b.Add({"dev/null", "", '3', "", 0666});
  null.dev_major = 1;
  null.dev_minor = 3;
  return b.Take();
}

std::vector<TarEntry> Layer1(Rng& rng) {
  LayerBuilder b;
  b.File("etc/os-release", "NAME=hoist-test\nVERSION=2\n");
  b.Add({"etc/.wh.to-delete", ""});
  b.Add({"opt/.wh.old", ""});
  // The opaque marker right after its directory (docker's order), then new content.
  b.Dir("var/cache");
  b.Add({"var/cache/.wh..wh..opq", ""});
  b.File("var/cache/new1", "new cache 1\n");
  b.File("var/cache/sub/new3", "new cache 3\n");
  b.File("var/cache/keepname", "upper version\n");
  for (int m = 0; m < 40; ++m) {
    for (int f = 0; f < 20; ++f) {
      b.File("opt/app/mod" + std::to_string(m) + "/f" + std::to_string(f) + ".py",
             Content(rng, PickSize(rng)));
    }
  }
  return b.Take();
}

std::vector<TarEntry> Layer2(Rng& rng) {
  LayerBuilder b;
  b.File("srv/ro/added", "added by layer 2 into a 0555 directory\n");
  b.File("etc/os-release", "NAME=hoist-test\nVERSION=3\n");
  for (int i = 0; i < 400; ++i) {
    TarEntry& e =
        b.File("srv/www/site" + std::to_string(i / 50) + "/page" + std::to_string(i) + ".html",
               Content(rng, PickSize(rng)));
    if (i % 10 == 0) {
      e.uid = 33;
      e.gid = 33;
    }
  }
  return b.Take();
}

std::vector<TarEntry> Layer3(Rng& rng) {
  LayerBuilder b;
  b.Add({"opt/app/mod3/.wh.f7.py", ""});
  b.Dir("usr/share/doc/pkg0", DirMeta{0700, 0, 0, {}});
  b.File("usr/local/bin/x", Content(rng, 3000), 0755);
  b.Add({"usr/local/bin/x-link", "", '1', "usr/local/bin/x"});
  for (int i = 0; i < 300; ++i) {
    b.File("usr/local/share/data/d" + std::to_string(i / 25) + "/item" + std::to_string(i),
           Content(rng, PickSize(rng)));
  }
  return b.Take();
}

std::string WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  return out ? "" : "write " + path + " failed";
}

// "../" repeated: enough to climb from anywhere in the store to "/".
std::string Ups() {
  std::string s;
  for (int i = 0; i < 40; ++i) s += "../";
  return s;
}

BuiltImage OneLayer(const std::vector<TarEntry>& entries) {
  return BuildImage(Format::kOci, {entries});
}

BuiltImage FromTar(const std::string& tar, Blob blob) {
  return BuildImageFromBlobs(Format::kOci, {std::move(blob)}, {Sha256Digest(tar)});
}

}  // namespace

std::vector<std::vector<TarEntry>> RealisticLayers() {
  Rng rng(20240101);
  std::vector<std::vector<TarEntry>> layers;
  layers.push_back(Layer0(rng));
  layers.push_back(Layer1(rng));
  layers.push_back(Layer2(rng));
  layers.push_back(Layer3(rng));
  return layers;
}

ImageConfigSpec RealisticConfig() {
  ImageConfigSpec spec;
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_MODE=test"};
  spec.entrypoint = {"/usr/bin/tool", "--serve"};
  spec.cmd = {"--port", "8080"};
  spec.working_dir = "/srv/www";
  return spec;
}

BuiltImage RealisticImage(Format f) {
  std::vector<Blob> blobs;
  std::vector<std::string> diff_ids;
  for (const auto& entries : RealisticLayers()) {
    std::string tar = MakeTar(entries);
    diff_ids.push_back(Sha256Digest(tar));
    blobs.push_back(GzipLayer(f, tar));
  }
  return BuildImageFromBlobs(f, std::move(blobs), std::move(diff_ids), RealisticConfig());
}

RealisticExpectations RealisticExpected() {
  RealisticExpectations e;
  e.absent = {"etc/to-delete",         "opt/old",
              "var/cache/old1",        "var/cache/old2",
              "var/cache/sub/old3",    "opt/app/mod3/f7.py",
              "etc/.wh.to-delete",     "opt/.wh.old",
              "var/cache/.wh..wh..opq"};
  e.present = {"var/cache/new1",       "var/cache/sub/new3", "var/cache/keepname",
               "srv/ro/added",         "srv/ro/readme",      "opt/app/mod3/f6.py",
               "usr/local/bin/x-link", "var/empty",          "usr/bin/tool-hard2"};
  e.min_regular_files = 3200;
  return e;
}

Status MakeOracle(const std::string& oracle_dir) {
  std::error_code ec;
  std::filesystem::create_directories(oracle_dir + "/sub", ec);
  if (ec) return InternalError("create " + oracle_dir + ": " + ec.message());
  std::string err = WriteAll(oracle_dir + "/secret", "the oracle's secret\n");
  if (err.empty()) err = WriteAll(oracle_dir + "/sub/file", "the oracle's sub file\n");
  if (!err.empty()) return InternalError(err);
  std::filesystem::create_symlink("secret", oracle_dir + "/link", ec);
  if (ec) return InternalError("symlink in " + oracle_dir + ": " + ec.message());
  return OkStatus();
}

std::vector<HostileCase> HostileCases(const std::string& oracle_dir, uint64_t bomb_bytes) {
  using Outcome = HostileCase::Outcome;
  const std::string oracle_rel = oracle_dir.substr(1);  // "tmp/.../oracle"
  std::vector<HostileCase> cases;

  // Names climbing out of the root are resolved inside it: the file lands where the name,
  // clamped at the root, says.
  cases.push_back({"dotdot",
                   OneLayer({{"../escape", "dotdot\n"}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {"escape"}});
  cases.push_back({"dotdot_to_oracle",
                   OneLayer({{Ups() + oracle_rel + "/escape-dotdot", "dotdot\n"},
                             {Ups() + oracle_rel + "/secret", "overwritten\n"}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {oracle_rel + "/escape-dotdot", oracle_rel + "/secret"}});
  cases.push_back({"absolute",
                   OneLayer({{"/abs/escape", "abs\n"}, {oracle_dir + "/escape-abs", "abs\n"}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {"abs/escape", oracle_rel + "/escape-abs"}});
  // A symlink to the oracle, then a write through it: absolute and relative targets.
  cases.push_back({"symlink_write_through",
                   OneLayer({{"lnk", "", '2', oracle_dir},
                             {"lnk/pwned", "through an absolute symlink\n"},
                             {"up", "", '2', Ups()},
                             {"up/" + oracle_rel + "/pwned2", "through a relative symlink\n"},
                             {"sec", "", '2', oracle_dir + "/secret"},
                             {"sec", "replace the symlink, not its target\n"}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {oracle_rel + "/pwned", oracle_rel + "/pwned2"}});
  // The same, with the symlink in a lower layer and the write in an upper one (this matters
  // when layers are applied onto one root, as `unpack` does).
  cases.push_back({"symlink_write_through_layers",
                   BuildImage(Format::kOci,
                              {{{"lnk", "", '2', oracle_dir}, {"rel", "", '2', Ups() + oracle_rel}},
                               {{"lnk/pwned", "through a lower layer's link\n"},
                                {"rel/pwned2", "through a relative one\n"},
                                {"lnk/sub/", "", '5'},
                                {"lnk/sub/file", "overwrite?\n"}}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {oracle_rel + "/pwned", oracle_rel + "/pwned2", oracle_rel + "/sub/file"}});
  // Hardlinks to a file outside: straight up, and through a symlink.
  cases.push_back({"hardlink_outside",
                   OneLayer({{"hl", "", '1', Ups() + oracle_rel + "/secret"}}),
                   Outcome::kPullsUnpackFails,
                   StatusCode::kDataLoss,
                   "does not exist",
                   {}});
  cases.push_back({"hardlink_through_symlink",
                   OneLayer({{"lnk", "", '2', oracle_dir}, {"hl", "", '1', "lnk/secret"}}),
                   Outcome::kPullsUnpackFails,
                   StatusCode::kDataLoss,
                   "does not exist",
                   {}});
  // Whiteouts aimed outside.
  cases.push_back({"whiteout_dotdot",
                   OneLayer({{"../.wh.x", ""},
                             {Ups() + oracle_rel + "/.wh.secret", ""},
                             {Ups() + oracle_rel + "/.wh..wh..opq", ""}}),
                   Outcome::kSucceeds,
                   StatusCode::kOk,
                   "",
                   {}});
  // Whiteouts and an opaque marker reached through a lower layer's symlink to the oracle.
  cases.push_back(
      {"whiteout_through_symlink",
       BuildImage(Format::kOci,
                  {{{"lnk", "", '2', oracle_dir}, {"keep", "kept\n"}},
                   {{"lnk/.wh.secret", ""}, {"lnk/sub/.wh..wh..opq", ""}, {"lnk/.wh.link", ""}}}),
       Outcome::kSucceeds,
       StatusCode::kOk,
       "",
       {"keep", "lnk"}});
  // A gzip bomb: a file of zeros that inflates past the cap.
  {
    std::string tar = MakeTar({{"bomb", std::string(bomb_bytes, '\0')}});
    Blob blob = GzipLayer(Format::kOci, tar);
    cases.push_back({"gzip_bomb",
                     FromTar(tar, std::move(blob)),
                     Outcome::kFails,
                     StatusCode::kResourceExhausted,
                     "",
                     {}});
  }
  // A config whose diff_id is not the layer's.
  {
    std::string tar = MakeTar({{"file", "content\n"}});
    cases.push_back({"wrong_diff_id",
                     BuildImageFromBlobs(Format::kOci, {GzipLayer(Format::kOci, tar)},
                                         {Sha256Digest(tar + "x")}),
                     Outcome::kFails,
                     StatusCode::kDataLoss,
                     "diff_id mismatch",
                     {}});
  }
  // zstd bytes under a gzip media type: the compression is detected from the bytes.
  {
    std::string tar = MakeTar({{"etc/", "", '5'}, {"etc/zstd", "zstd inside\n"}});
    std::string z = Zstd(tar);
    Blob blob{"application/vnd.oci.image.layer.v1.tar+gzip", Sha256Digest(z), z};
    cases.push_back({"zstd_as_gzip",
                     FromTar(tar, std::move(blob)),
                     Outcome::kSucceeds,
                     StatusCode::kOk,
                     "",
                     {"etc/zstd"}});
  }
  // A 2 MiB PAX header.
  {
    TarEntry e{"big-header", "x"};
    e.pax = {{"comment", std::string(2 << 20, 'c')}};
    std::string tar = MakeTar({e});
    cases.push_back({"huge_pax_header",
                     FromTar(tar, GzipLayer(Format::kOci, tar)),
                     Outcome::kFails,
                     StatusCode::kResourceExhausted,
                     "",
                     {}});
  }
  // Garbage after the end-of-archive marker (inside the tar stream, so in the diff_id).
  {
    std::string tar = MakeTar({{"before-garbage", "fine\n"}});
    Rng rng(7);
    for (int i = 0; i < 3000; ++i) tar += static_cast<char>(1 + rng.Below(255));
    cases.push_back({"trailing_garbage",
                     FromTar(tar, GzipLayer(Format::kOci, tar)),
                     Outcome::kSucceeds,
                     StatusCode::kOk,
                     "",
                     {"before-garbage"}});
  }
  return cases;
}

}  // namespace hoist::testing

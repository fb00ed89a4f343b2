// hoist-seed: builds an image from local directories and pushes it to a registry, for the
// demo and the benchmark. Each --dir becomes one gzip layer holding that directory's tree
// (regular files, directories, symlinks), its entries sorted by path so that the same files
// give the same bytes.
//   --copies N   each layer holds its tree N times: at its root, then under c2/ ... cN/
//                (N times the bytes and the entries, for scaling runs);
//   --changed-top TAG2  also push REPO:TAG2, the same image but for its top layer, which
//                also holds a file .hoist-seed-stamp (only the top layer differs).
// Layers are built and pushed one at a time, so memory holds one layer's tree at most (plus
// the compressed blobs and, with --changed-top, the top layer's tree).
//
//   hoist-seed [--format oci|docker] [--copies N] [--changed-top TAG2] [--dir DIR]...
//              HOST REPO:TAG
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/image_builder.h"

namespace fs = std::filesystem;
using hoist::testing::Blob;
using hoist::testing::TarEntry;

namespace {

// The tree under `root`, each path prefixed with `prefix` ("" or "c2/"), sorted by path.
std::vector<TarEntry> EntriesOf(const fs::path& root, const std::string& prefix) {
  std::vector<TarEntry> out;
  if (!prefix.empty()) out.push_back({prefix, "", '5', "", 0755});
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    // Lexical: fs::relative would follow a symlink and name it after its target.
    std::string rel = prefix + p.lexically_relative(root).string();
    auto status = fs::symlink_status(p);
    int mode = static_cast<int>(status.permissions()) & 07777;
    if (fs::is_symlink(status)) {
      out.push_back({rel, "", '2', fs::read_symlink(p).string(), 0777});
    } else if (fs::is_directory(status)) {
      out.push_back({rel + "/", "", '5', "", mode});
    } else if (fs::is_regular_file(status)) {
      std::ifstream in(p, std::ios::binary);
      out.push_back({rel, std::string(std::istreambuf_iterator<char>(in), {}), '0', "", mode});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TarEntry& a, const TarEntry& b) { return a.path < b.path; });
  return out;
}

// Pushes the image of `blobs` (pushed already) as HOST/REPO:TAG and prints a line about it.
int PushTagged(hoist::testing::Format format, const std::string& host, const std::string& repo,
               const std::string& tag, std::vector<Blob> blobs, std::vector<std::string> diff_ids) {
  auto image = hoist::testing::BuildImageFromBlobs(format, std::move(blobs), std::move(diff_ids));
  hoist::Status s = hoist::testing::PushImage(host, repo, tag, image);
  if (!s.ok()) {
    std::fprintf(stderr, "hoist-seed: push %s/%s:%s: %s\n", host.c_str(), repo.c_str(), tag.c_str(),
                 s.message().c_str());
    return 1;
  }
  size_t bytes = image.config.data.size();
  for (const auto& l : image.layers) bytes += l.data.size();
  std::printf("pushed %s/%s:%s: %zu layers, %zu bytes, %s\n", host.c_str(), repo.c_str(),
              tag.c_str(), image.layers.size(), bytes, image.manifest_digest.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hoist::testing::Format format = hoist::testing::Format::kOci;
  std::vector<std::string> dirs;
  std::vector<std::string> args;
  int copies = 1;
  std::string changed_top_tag;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--format" && i + 1 < argc) {
      format = std::string(argv[++i]) == "docker" ? hoist::testing::Format::kDocker
                                                  : hoist::testing::Format::kOci;
    } else if (a == "--dir" && i + 1 < argc) {
      dirs.push_back(argv[++i]);
    } else if (a == "--copies" && i + 1 < argc) {
      copies = std::atoi(argv[++i]);
    } else if (a == "--changed-top" && i + 1 < argc) {
      changed_top_tag = argv[++i];
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 2 || args[1].find(':') == std::string::npos || copies < 1) {
    std::fprintf(stderr,
                 "usage: hoist-seed [--format oci|docker] [--copies N] [--changed-top TAG2] "
                 "[--dir DIR]... HOST REPO:TAG\n");
    return 2;
  }
  const std::string& host = args[0];
  std::string repo = args[1].substr(0, args[1].rfind(':'));
  std::string tag = args[1].substr(args[1].rfind(':') + 1);
  if (dirs.empty()) dirs.push_back("");  // one small default layer
  std::vector<Blob> blobs;
  std::vector<std::string> diff_ids;
  // Appends the layer of `entries` to blobs/diff_ids and pushes it.
  auto add_layer = [&](const std::vector<TarEntry>& entries) {
    std::string tar = hoist::testing::MakeTar(entries);
    diff_ids.push_back(hoist::testing::Sha256Digest(tar));
    blobs.push_back(hoist::testing::GzipLayer(format, tar));
    hoist::Status s = hoist::testing::PushBlob(host, repo, blobs.back());
    if (!s.ok()) {
      std::fprintf(stderr, "hoist-seed: push a layer of %s/%s: %s\n", host.c_str(), args[1].c_str(),
                   s.message().c_str());
    }
    return s.ok();
  };
  std::vector<TarEntry> top;
  for (size_t i = 0; i < dirs.size(); ++i) {
    std::vector<TarEntry> entries;
    if (dirs[i].empty()) {
      entries = {{"etc/", "", '5'}, {"etc/motd", "hello from hoist-seed\n"}};
    }
    for (int c = 1; c <= copies && !dirs[i].empty(); ++c) {
      auto copy = EntriesOf(dirs[i], c == 1 ? "" : "c" + std::to_string(c) + "/");
      entries.insert(entries.end(), std::make_move_iterator(copy.begin()),
                     std::make_move_iterator(copy.end()));
    }
    if (!add_layer(entries)) return 1;
    if (i + 1 == dirs.size()) top = std::move(entries);
  }
  if (PushTagged(format, host, repo, tag, blobs, diff_ids) != 0) return 1;
  if (changed_top_tag.empty()) return 0;
  // The same image but for its top layer, which also holds .hoist-seed-stamp.
  blobs.pop_back();
  diff_ids.pop_back();
  top.push_back({".hoist-seed-stamp", "the top layer of " + tag + " changed\n"});
  if (!add_layer(top)) return 1;
  return PushTagged(format, host, repo, changed_top_tag, std::move(blobs), std::move(diff_ids));
}

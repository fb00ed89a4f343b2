// hoist-seed: builds an image from local directories and pushes it to a registry, for the
// demo and the benchmark. Each --dir becomes one gzip layer holding that directory's tree
// (regular files, directories, symlinks), its entries sorted by path so that the same files
// give the same bytes.
//   --copies N   each layer holds its tree N times: at its root, then under c2/ ... cN/
//                (N times the bytes and the entries, for scaling runs);
//   --stamp TEXT the top layer also holds a file .hoist-seed-stamp with TEXT (a second tag
//                whose top layer alone differs).
// Layers are built and pushed one at a time, so memory holds one layer's tree at most (plus
// the compressed blobs).
//
//   hoist-seed [--format oci|docker] [--copies N] [--stamp TEXT] [--dir DIR]... HOST REPO:TAG
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

}  // namespace

int main(int argc, char** argv) {
  hoist::testing::Format format = hoist::testing::Format::kOci;
  std::vector<std::string> dirs;
  std::vector<std::string> args;
  int copies = 1;
  std::string stamp;
  bool has_stamp = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--format" && i + 1 < argc) {
      format = std::string(argv[++i]) == "docker" ? hoist::testing::Format::kDocker
                                                  : hoist::testing::Format::kOci;
    } else if (a == "--dir" && i + 1 < argc) {
      dirs.push_back(argv[++i]);
    } else if (a == "--copies" && i + 1 < argc) {
      copies = std::atoi(argv[++i]);
    } else if (a == "--stamp" && i + 1 < argc) {
      stamp = argv[++i];
      has_stamp = true;
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 2 || args[1].find(':') == std::string::npos || copies < 1) {
    std::fprintf(stderr,
                 "usage: hoist-seed [--format oci|docker] [--copies N] [--stamp TEXT] "
                 "[--dir DIR]... HOST REPO:TAG\n");
    return 2;
  }
  std::string repo = args[1].substr(0, args[1].rfind(':'));
  std::string tag = args[1].substr(args[1].rfind(':') + 1);
  if (dirs.empty()) dirs.push_back("");  // one small default layer
  std::vector<Blob> blobs;
  std::vector<std::string> diff_ids;
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
    if (has_stamp && i + 1 == dirs.size()) entries.push_back({".hoist-seed-stamp", stamp});
    std::string tar = hoist::testing::MakeTar(entries);
    entries.clear();
    diff_ids.push_back(hoist::testing::Sha256Digest(tar));
    blobs.push_back(hoist::testing::GzipLayer(format, tar));
    hoist::Status s = hoist::testing::PushBlob(args[0], repo, blobs.back());
    if (!s.ok()) {
      std::fprintf(stderr, "hoist-seed: push a layer of %s/%s: %s\n", args[0].c_str(),
                   args[1].c_str(), s.message().c_str());
      return 1;
    }
  }
  auto image = hoist::testing::BuildImageFromBlobs(format, std::move(blobs), std::move(diff_ids));
  hoist::Status s = hoist::testing::PushImage(args[0], repo, tag, image);
  if (!s.ok()) {
    std::fprintf(stderr, "hoist-seed: push %s/%s: %s\n", args[0].c_str(), args[1].c_str(),
                 s.message().c_str());
    return 1;
  }
  size_t bytes = image.config.data.size();
  for (const auto& l : image.layers) bytes += l.data.size();
  std::printf("pushed %s/%s: %zu layers, %zu bytes, %s\n", args[0].c_str(), args[1].c_str(),
              image.layers.size(), bytes, image.manifest_digest.c_str());
  return 0;
}

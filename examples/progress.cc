// Pull one image and draw progress from the callback: the layers done, the bytes downloaded or
// extracted of the total, and the state of the layer that moved last, on one line redrawn with
// a carriage return (a line per state change when stdout is not a terminal).
//
//   progress STORE_DIR REFERENCE
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>

#include "hoist/client.h"

namespace {

struct Layer {
  hoist::ProgressState state = hoist::ProgressState::kWaiting;
  int64_t current = 0, total = 0;
};

const char* Name(hoist::ProgressState s) {
  switch (s) {
    case hoist::ProgressState::kWaiting:
      return "waiting";
    case hoist::ProgressState::kDownloading:
      return "downloading";
    case hoist::ProgressState::kVerifying:
      return "verifying";
    case hoist::ProgressState::kDownloadComplete:
      return "downloaded";
    case hoist::ProgressState::kAlreadyExists:
      return "already exists";
    case hoist::ProgressState::kExtracting:
      return "extracting";
    case hoist::ProgressState::kPullComplete:
      return "complete";
    case hoist::ProgressState::kRetrying:
      return "retrying";
    case hoist::ProgressState::kWaitingForOther:
      return "waiting for another pull";
  }
  return "";
}

bool Done(hoist::ProgressState s) {
  return s == hoist::ProgressState::kPullComplete || s == hoist::ProgressState::kAlreadyExists ||
         s == hoist::ProgressState::kDownloadComplete;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STORE_DIR REFERENCE\n", argv[0]);
    return 2;
  }
  hoist::ClientOptions options;
  options.store_dir = argv[1];
  auto client = hoist::Client::Open(options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().message().c_str());
    return 1;
  }

  const bool tty = isatty(STDOUT_FILENO);
  std::map<std::string, Layer> layers;  // the callback is never called twice at once
  hoist::PullOptions pull;
  pull.progress = [&](const hoist::ProgressEvent& e) {
    Layer& l = layers[e.descriptor.digest.String()];
    const bool changed = l.state != e.state;
    if (e.state != hoist::ProgressState::kRetrying) {
      l.state = e.state;
      l.current = Done(e.state) ? e.total : e.current;
    }
    l.total = e.total;
    int done = 0;
    int64_t current = 0, total = 0;
    for (const auto& [digest, layer] : layers) {
      done += Done(layer.state);
      current += layer.current;
      total += layer.total;
    }
    if (!tty && !changed) return;
    std::printf("%s%d/%zu layers  %.1f/%.1f MB  %.19s %s%s", tty ? "\r\033[K" : "", done,
                layers.size(), static_cast<double>(current) / 1e6, static_cast<double>(total) / 1e6,
                e.descriptor.digest.String().c_str(), Name(e.state), tty ? "" : "\n");
    std::fflush(stdout);
  };
  hoist::Result<hoist::Image> image = (*client)->Pull(argv[2], pull);
  if (tty) std::printf("\n");
  if (!image.ok()) {
    std::fprintf(stderr, "%s\n", image.status().message().c_str());
    return 1;
  }
  std::printf("%s %s\n", image->reference.c_str(), image->manifest.digest.String().c_str());
  return 0;
}

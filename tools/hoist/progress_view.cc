#include "progress_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/strings.h"

namespace hoist::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string ShortId(const Digest& d) { return d.hex().substr(0, 12); }

// Docker's words for the states; Waiting is "Pulling fs layer" in line-per-state output.
const char* StateText(ProgressState s, bool plain) {
  switch (s) {
    case ProgressState::kWaiting:
      return plain ? "Pulling fs layer" : "Waiting";
    case ProgressState::kDownloading:
      return "Downloading";
    case ProgressState::kVerifying:
      return plain ? "Verifying Checksum" : "Verifying";
    case ProgressState::kDownloadComplete:
      return "Download complete";
    case ProgressState::kAlreadyExists:
      return "Already exists";
    case ProgressState::kExtracting:
      return "Extracting";
    case ProgressState::kPullComplete:
      return "Pull complete";
    case ProgressState::kRetrying:
      return "Retrying";
    case ProgressState::kWaitingForOther:
      return plain ? "Waiting" : "Waiting on another pull";
  }
  return "";
}

// The stable names of the JSON events.
const char* StateName(ProgressState s) {
  switch (s) {
    case ProgressState::kWaiting:
      return "waiting";
    case ProgressState::kDownloading:
      return "downloading";
    case ProgressState::kVerifying:
      return "verifying";
    case ProgressState::kDownloadComplete:
      return "download_complete";
    case ProgressState::kAlreadyExists:
      return "already_exists";
    case ProgressState::kExtracting:
      return "extracting";
    case ProgressState::kPullComplete:
      return "pull_complete";
    case ProgressState::kRetrying:
      return "retrying";
    case ProgressState::kWaitingForOther:
      return "waiting_for_other";
  }
  return "";
}

// Whether a layer in this state has nothing left to do (as far as this pull shows it).
bool IsFinal(ProgressState s) {
  return s == ProgressState::kPullComplete || s == ProgressState::kAlreadyExists ||
         s == ProgressState::kDownloadComplete;
}

std::string StartLine(const Reference& ref) {
  return TerminalSafe(ref.digest() ? ref.digest()->String() : ref.tag()) + ": Pulling from " +
         TerminalSafe(ref.path());
}

void PrintResult(FILE* out, const Reference& ref, const Image& image) {
  std::fprintf(out, "Digest: %s\n", image.repo_digest.String().c_str());
  std::fprintf(out, "Status: %s for %s\n",
               image.downloaded ? "Downloaded newer image" : "Image is up to date",
               TerminalSafe(ref.Familiar()).c_str());
  std::fprintf(out, "%s\n", TerminalSafe(ref.String()).c_str());
  std::fflush(out);
}

void PrintNotice(FILE* out, const std::string& line) {
  std::fflush(out);
  std::fprintf(stderr, "hoist: %s\n", TerminalSafe(line).c_str());
}

// ---- plain: one line per state change ----

class PlainView : public ProgressView {
 public:
  explicit PlainView(FILE* out) : out_(out) {}
  void Start(const Reference& ref) override {
    std::fprintf(out_, "%s\n", StartLine(ref).c_str());
    std::fflush(out_);
  }
  void Event(const ProgressEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = last_.try_emplace(e.descriptor.digest, e.state);
    if (!added && it->second == e.state && e.state != ProgressState::kRetrying) return;
    it->second = e.state;
    std::string line = ShortId(e.descriptor.digest) + ": ";
    if (e.state == ProgressState::kRetrying) {
      line += TerminalSafe(e.message);
    } else {
      line += StateText(e.state, true);
      if (e.total > 0) line += " (" + HumanSize(e.total) + ")";
    }
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }
  void Notice(const std::string& line) override {
    std::lock_guard<std::mutex> lock(mu_);
    PrintNotice(out_, line);
  }
  void Done(const Reference& ref, const Image& image) override { PrintResult(out_, ref, image); }
  void Failed(const Status&) override { std::fflush(out_); }

 private:
  FILE* out_;
  std::mutex mu_;
  std::map<Digest, ProgressState> last_;  // guarded by mu_
};

// ---- json: one object per line ----

// Now as RFC 3339 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

class JsonView : public ProgressView {
 public:
  explicit JsonView(FILE* out) : out_(out) {}
  void Start(const Reference& ref) override {
    Emit({{"type", "start"}, {"reference", ref.String()}});
  }
  void Event(const ProgressEvent& e) override {
    nlohmann::json j = {{"type", "progress"},
                        {"layer", e.descriptor.digest.String()},
                        {"state", StateName(e.state)},
                        {"current", e.current},
                        {"total", e.total}};
    if (!e.message.empty()) j["message"] = e.message;
    Emit(std::move(j));
  }
  void Notice(const std::string& line) override {
    Emit({{"type", "notice"}, {"message", line}});
    std::lock_guard<std::mutex> lock(mu_);
    PrintNotice(out_, line);
  }
  void Done(const Reference& ref, const Image& image) override {
    Emit({{"type", "result"},
          {"reference", ref.String()},
          {"digest", image.repo_digest.String()},
          {"downloaded", image.downloaded}});
  }
  void Failed(const Status& s) override {
    Emit({{"type", "error"},
          {"code", std::string(StatusCodeName(s.code()))},
          {"message", s.message()}});
  }

 private:
  void Emit(nlohmann::json j) {
    j["timestamp"] = Timestamp();
    std::string line =
        TerminalSafeJson(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

  FILE* out_;
  std::mutex mu_;
};

// ---- tty: a frame redrawn in place ----

// Text of ours or made terminal-safe, cut to `width` columns. Non-ASCII code points are shown
// as '?', so that one byte is one column and the cut is exact.
std::string Fit(const std::string& text, size_t width) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= width) break;
    if (c >= 0x80) {
      if ((c & 0xC0) != 0x80) out += '?';  // one '?' per code point
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Bar(int64_t current, int64_t total, size_t width) {
  if (width < 3) return "";
  const size_t inner = width - 2;
  size_t done =
      total > 0
          ? static_cast<size_t>(
                static_cast<double>(inner) *
                std::clamp(static_cast<double>(current) / static_cast<double>(total), 0.0, 1.0))
          : 0;
  std::string bar = "[" + std::string(done, '=');
  if (done < inner) bar += '>' + std::string(inner - done - 1, ' ');
  return bar + "]";
}

std::string Speed(double bytes_per_second) {
  return HumanSize(static_cast<int64_t>(bytes_per_second)) + "/s";
}

std::string Duration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
  }
  return buf;
}

class TtyView : public ProgressView {
 public:
  explicit TtyView(FILE* out) : out_(out), started_(Clock::now()) {}
  ~TtyView() override { Stop(); }

  void Start(const Reference& ref) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(out_, "%s\n", StartLine(ref).c_str());
    std::fflush(out_);
    ticker_ = std::thread([this] { Tick(); });
  }
  void Event(const ProgressEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = index_.try_emplace(e.descriptor.digest, layers_.size());
    if (added) {
      layers_.emplace_back();
      layers_.back().id = ShortId(e.descriptor.digest);
    }
    Layer& l = layers_[it->second];
    l.total = e.total;
    if (e.state == ProgressState::kRetrying) {
      l.message = TerminalSafe(e.message);  // shown until the next state
      dirty_ = true;
      return;
    }
    l.message.clear();
    if ((e.state == ProgressState::kDownloading || e.state == ProgressState::kExtracting) &&
        l.state != e.state) {
      l.since = Clock::now();
    }
    l.state = e.state;
    l.current = IsFinal(e.state) ? e.total : e.current;
    dirty_ = true;
  }
  void Notice(const std::string& line) override {
    std::lock_guard<std::mutex> lock(mu_);
    Erase();
    PrintNotice(out_, line);
    Draw(false);
  }
  void Done(const Reference& ref, const Image& image) override {
    Stop();
    PrintResult(out_, ref, image);
  }
  void Failed(const Status&) override { Stop(); }

 private:
  struct Layer {
    std::string id;
    ProgressState state = ProgressState::kWaiting;
    int64_t current = 0, total = 0;
    Clock::time_point since{};  // when Downloading or Extracting began
    std::string message;        // the retry reason, while retrying
  };

  // Redraws about 10 times a second while something changes or moves, else once a second.
  void Tick() {
    std::unique_lock<std::mutex> lock(mu_);
    auto last = Clock::now();
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; });
      if (stop_) break;
      // A moving layer's speed and the ETA change even while no event comes (a stall).
      const bool moving = std::any_of(layers_.begin(), layers_.end(), [](const Layer& l) {
        return l.state == ProgressState::kDownloading || l.state == ProgressState::kExtracting;
      });
      if (dirty_ || moving || Clock::now() - last >= std::chrono::seconds(1)) {
        Draw(false);
        last = Clock::now();
      }
    }
  }

  // Ends the ticker and draws the final frame, once.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stop_ = true;
    }
    wake_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    Draw(true);
  }

  // Moves the cursor back to the frame's first line and clears from there. Needs mu_.
  void Erase() {
    if (drawn_ > 0) std::fprintf(out_, "\x1b[%zuA\r\x1b[J", drawn_);
    drawn_ = 0;
    std::fflush(out_);
  }

  // The terminal's size, asked each frame (a resize applies to the next frame).
  static void Size(FILE* out, size_t* cols, size_t* rows) {
    winsize ws{};
    *cols = 80;
    *rows = 24;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      *cols = ws.ws_col;
      if (ws.ws_row > 0) *rows = ws.ws_row;
    }
  }

  std::string LayerLine(const Layer& l, size_t cols, Clock::time_point now) const {
    char state[24];
    std::snprintf(state, sizeof(state), "%-17s", StateText(l.state, false));
    std::string line = l.id + ": " + state;
    if (!l.message.empty()) return line + l.message;
    const bool moving = l.state == ProgressState::kDownloading ||
                        l.state == ProgressState::kExtracting ||
                        l.state == ProgressState::kVerifying;
    if (!moving) return l.total > 0 && IsFinal(l.state) ? line + " " + HumanSize(l.total) : line;
    std::string sizes = HumanSize(l.current) + "/" + HumanSize(l.total);
    double elapsed = Seconds(now - l.since);
    std::string speed = elapsed > 0.2 ? Speed(static_cast<double>(l.current) / elapsed) : "";
    // The bar takes what is left, between 10 and 40 columns; below 10 it is left out.
    size_t fixed = line.size() + 1 + sizes.size() + (speed.empty() ? 0 : 2 + speed.size());
    size_t room = cols > fixed + 1 ? cols - fixed - 1 : 0;
    if (room >= 10) line += Bar(l.current, l.total, std::min<size_t>(room, 40)) + " ";
    line += sizes;
    if (!speed.empty()) line += "  " + speed;
    return line;
  }

  std::string Summary(bool final, Clock::time_point now) const {
    int64_t current = 0, total = 0;
    size_t done = 0;
    for (const Layer& l : layers_) {
      if (l.state == ProgressState::kAlreadyExists) {
        ++done;
        continue;
      }
      current += l.current;
      total += l.total;
      done += IsFinal(l.state);
    }
    double elapsed = Seconds(now - started_);
    double speed = elapsed > 0.2 ? static_cast<double>(current) / elapsed : 0;
    std::string line = "Total: " + std::to_string(done) + "/" + std::to_string(layers_.size()) +
                       " layers, " + HumanSize(current) + "/" + HumanSize(total);
    if (speed > 0) line += "  " + Speed(speed);
    if (final) {
      line += "  in " + Duration(elapsed);
    } else if (speed > 0 && total > current) {
      line += "  ETA " + Duration(static_cast<double>(total - current) / speed);
    }
    return line;
  }

  // Draws the frame over the previous one: a line per layer and the summary, each cut to the
  // terminal's width (minus one column, so no terminal wraps). When the layers do not fit in
  // the terminal's height, the unfinished ones come first and a line counts the rest. Needs mu_.
  void Draw(bool final) {
    size_t cols, rows;
    Size(out_, &cols, &rows);
    const size_t width = cols > 1 ? cols - 1 : 1;
    const auto now = Clock::now();
    std::vector<const Layer*> shown;
    for (const Layer& l : layers_) shown.push_back(&l);
    // The frame may use all rows but one (the cursor's line below it).
    const size_t max_layers = rows > 3 ? rows - 2 : 1;
    size_t hidden = 0;
    if (shown.size() > max_layers) {
      std::stable_partition(shown.begin(), shown.end(),
                            [](const Layer* l) { return !IsFinal(l->state); });
      hidden = shown.size() - (max_layers - 1);
      shown.resize(max_layers - 1);
    }
    std::string frame;
    if (drawn_ > 0) frame += "\x1b[" + std::to_string(drawn_) + "A\r";
    size_t lines = 0;
    auto add = [&](const std::string& text) {
      frame += "\x1b[2K" + Fit(text, width) + "\n";
      ++lines;
    };
    for (const Layer* l : shown) add(LayerLine(*l, width, now));
    if (hidden > 0) add("... and " + std::to_string(hidden) + " more layers");
    if (!layers_.empty()) add(Summary(final, now));
    frame += "\x1b[J";
    std::fputs(frame.c_str(), out_);
    std::fflush(out_);
    drawn_ = lines;
    dirty_ = false;
  }

  FILE* out_;
  const Clock::time_point started_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::thread ticker_;
  // Guarded by mu_:
  std::vector<Layer> layers_;       // in the order the pull first reported them
  std::map<Digest, size_t> index_;  // digest → position in layers_
  size_t drawn_ = 0;                // lines of the last frame, above the cursor
  bool dirty_ = false;              // changed since the last frame
  bool stop_ = false, stopped_ = false;
};

}  // namespace

std::string HumanSize(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f%s" : "%.3g%s", v, units[u]);
  return buf;
}

ProgressMode ProgressModeFor(const std::string& flag, int fd) {
  if (flag == "tty") return ProgressMode::kTty;
  if (flag == "plain") return ProgressMode::kPlain;
  if (flag == "json") return ProgressMode::kJson;
  return isatty(fd) ? ProgressMode::kTty : ProgressMode::kPlain;
}

std::unique_ptr<ProgressView> ProgressView::Create(ProgressMode mode, FILE* out) {
  switch (mode) {
    case ProgressMode::kTty:
      return std::make_unique<TtyView>(out);
    case ProgressMode::kJson:
      return std::make_unique<JsonView>(out);
    case ProgressMode::kPlain:
      break;
  }
  return std::make_unique<PlainView>(out);
}

}  // namespace hoist::cli

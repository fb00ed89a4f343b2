// `hoist pull --progress`: live frames under a pseudo-terminal of a fixed size (read back through
// a small terminal model), plain lines without control characters, and JSON events that parse
// and end consistently; against the real registry, through a proxy that stalls one layer
// half-way so that the pull is seen in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/fault_proxy.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

using testing::CliRun;
using testing::Fault;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A terminal of `cols` x `rows` that understands what the tty view writes (printable ASCII, CR,
// LF, ESC[nA, ESC[2K, ESC[J) and records anything else, and every write past the last column.
class Screen {
 public:
  Screen(size_t cols, size_t rows) : cols_(cols), rows_(rows), cells_(rows, "") {}

  void Feed(const std::string& bytes) {
    for (size_t i = 0; i < bytes.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(bytes[i]);
      if (c == '\r') {
        col_ = 0;
      } else if (c == '\n') {
        lines_.push_back(cells_[row_]);
        if (++row_ == rows_) {
          cells_.erase(cells_.begin());
          cells_.emplace_back();
          --row_;
        }
      } else if (c == 0x1b && i + 1 < bytes.size() && bytes[i + 1] == '[') {
        size_t end = i + 2;
        while (end < bytes.size() && (std::isdigit(bytes[end]) || bytes[end] == ';')) ++end;
        if (end == bytes.size()) break;
        const std::string arg = bytes.substr(i + 2, end - i - 2);
        const int n = arg.empty() ? 0 : std::stoi(arg);
        switch (bytes[end]) {
          case 'A':
            row_ -= std::min<size_t>(row_, n == 0 ? 1 : n);
            break;
          case 'K':
            if (n == 2) cells_[row_].clear();
            break;
          case 'J':
            cells_[row_].resize(std::min(cells_[row_].size(), col_));
            for (size_t r = row_ + 1; r < rows_; ++r) cells_[r].clear();
            break;
          default:
            unknown_ += bytes.substr(i, end - i + 1);
        }
        i = end;
      } else if (c < 0x20 || c == 0x7f) {
        unknown_ += static_cast<char>(c);
      } else if ((c & 0xC0) != 0x80) {  // a character (UTF-8 continuation bytes take no column)
        if (col_ >= cols_) {
          ++overflows_;
          continue;
        }
        std::string& line = cells_[row_];
        if (line.size() <= col_) line.resize(col_ + 1, ' ');
        line[col_++] = static_cast<char>(c);
      }
    }
  }

  // The rows on screen now, trailing empty ones left out.
  std::vector<std::string> Rows() const {
    std::vector<std::string> out(cells_.begin(), cells_.end());
    while (!out.empty() && out.back().empty()) out.pop_back();
    return out;
  }
  const std::vector<std::string>& written_lines() const { return lines_; }  // at each LF
  int overflows() const { return overflows_; }
  const std::string& unknown() const { return unknown_; }

 private:
  size_t cols_, rows_, row_ = 0, col_ = 0;
  std::vector<std::string> cells_;
  std::vector<std::string> lines_;
  int overflows_ = 0;
  std::string unknown_;
};

struct PtyRun {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout and stderr, as the terminal got them
};

// Runs the hoist binary on a new pseudo-terminal of `cols` x `rows` (its stdin, stdout and
// stderr), reading what it writes until it exits, at most 120 s. When `interrupt_on` is not
// empty, the child gets SIGINT once its output holds that text.
PtyRun RunInPty(const std::vector<std::string>& args, unsigned short cols, unsigned short rows,
                const std::string& interrupt_on = "") {
  PtyRun run;
  winsize ws{};
  ws.ws_col = cols;
  ws.ws_row = rows;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) return run;
  if (pid == 0) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(HOIST_CLI));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(HOIST_CLI, argv.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool interrupted = false;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO once the child and every copy of the slave side are gone
    run.out.append(buf, static_cast<size_t>(n));
    if (!interrupt_on.empty() && !interrupted && run.out.find(interrupt_on) != std::string::npos) {
      kill(pid, SIGINT);
      interrupted = true;
    }
  }
  close(master);
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

class CliProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto dir = testing::TempDir::Create("hoist-progress-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
    std::vector<std::vector<testing::TarEntry>> layers;
    for (unsigned i = 0; i < 3; ++i) {
      layers.push_back({{"data/", "", '5'},
                        {"data/file" + std::to_string(i), testing::RandomBytes(1500000, i + 1)}});
    }
    image_ = testing::BuildImage(testing::Format::kOci, layers);
    auto started = testing::StartProxiedRegistry("app", "1", image_);
    ASSERT_TRUE(started.ok()) << started.status().message();
    reg_ = std::move(started->registry);
    proxy_ = std::move(started->proxy);
  }
  // The middle layer stops half-way for `stall`, then the connection ends and the pull
  // resumes it: long enough for several frames with that layer in flight.
  void StallMiddleLayer(std::chrono::milliseconds stall) {
    proxy_->Add({.kind = Fault::kStall,
                 .path_contains = image_.layers[1].digest,
                 .fraction = 0.5,
                 .stall = stall});
  }
  std::string Ref() const { return proxy_->host() + "/app:1"; }
  std::string Id(size_t layer) const { return image_.layers[layer].digest.substr(7, 12); }
  CliRun Hoist(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return testing::RunCli(HOIST_CLI, args, dir_->path());
  }

  std::optional<testing::TempDir> dir_;
  std::string store_;
  testing::BuiltImage image_;
  std::unique_ptr<testing::TestRegistry> reg_;
  std::unique_ptr<testing::FaultProxy> proxy_;
};

// On a terminal (auto): bars while layers download, every line within the width, a frame that
// fits the height, and a final frame left on screen with every layer "Pull complete".
TEST_F(CliProgressTest, TerminalFramesFitAndTheFinalFrameStays) {
  StallMiddleLayer(std::chrono::milliseconds(800));
  PtyRun run = RunInPty({"--store", store_, "pull", Ref()}, 100, 30);
  ASSERT_EQ(run.exit_code, 0) << run.out;
  Screen screen(100, 30);
  screen.Feed(run.out);
  EXPECT_EQ(screen.overflows(), 0) << "a line wider than the terminal";
  EXPECT_EQ(screen.unknown(), "") << "a control character besides the cursor movement";

  // In flight: the stalled layer's line with a bar, its bytes and its speed.
  const std::regex bar(Id(1) +
                       ": Downloading +\\[=*> *\\] [0-9.]+[kM]?B/[0-9.]+MB  [0-9.]+[kM]?B/s");
  int bars = 0;
  for (const auto& line : screen.written_lines()) bars += std::regex_search(line, bar);
  EXPECT_GE(bars, 3) << run.out;  // redrawn during the stall

  // The final frame, then Digest and Status.
  std::vector<std::string> rows = screen.Rows();
  ASSERT_GE(rows.size(), 8u) << run.out;
  const size_t frame = rows.size() - 3 - 4;  // 3 layers and the summary, above 3 result lines
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[frame + i].rfind(Id(i) + ": Pull complete", 0), 0u) << rows[frame + i];
    EXPECT_TRUE(std::regex_search(rows[frame + i], std::regex(" [0-9.]+MB$"))) << rows[frame + i];
  }
  EXPECT_TRUE(std::regex_search(
      rows[frame + 3], std::regex("^Total: 3/3 layers, ([0-9.]+MB)/\\1  [0-9.]+[kM]?B/s  in ")))
      << rows[frame + 3];
  EXPECT_EQ(rows[frame + 4], "Digest: " + image_.manifest_digest);
  EXPECT_EQ(rows[frame + 5].rfind("Status: Downloaded newer image for ", 0), 0u);
  EXPECT_EQ(rows[0], "1: Pulling from app") << "the frame overwrote the line above it";
}

// A terminal too narrow and too short for the frame: lines are cut to the width, and the
// frame keeps within the height (the finished layers are counted on one line).
TEST_F(CliProgressTest, SmallTerminalCutsLinesAndCountsLayersThatDoNotFit) {
  StallMiddleLayer(std::chrono::milliseconds(500));
  PtyRun run = RunInPty({"--store", store_, "pull", "--progress=tty", Ref()}, 40, 4);
  ASSERT_EQ(run.exit_code, 0) << run.out;
  Screen screen(40, 4);
  screen.Feed(run.out.substr(0, run.out.find("Digest: ")));  // the frames (the rest may wrap)
  EXPECT_EQ(screen.overflows(), 0) << run.out;
  int counted = 0;
  for (const auto& line : screen.written_lines()) {
    EXPECT_LE(line.size(), 39u) << line;
    counted += line.find("... and 2 more layers") != std::string::npos;
  }
  EXPECT_GE(counted, 1) << run.out;
}

// Ctrl-C during a pull: the frame stays, the error is one line of its own (no torn line), and
// the exit code is 130.
TEST_F(CliProgressTest, InterruptLeavesTheFrameAndAWholeErrorLine) {
  StallMiddleLayer(std::chrono::milliseconds(20000));
  PtyRun run = RunInPty({"--store", store_, "pull", Ref()}, 100, 30, Id(1) + ": Downloading");
  EXPECT_EQ(run.exit_code, 130) << run.out;
  Screen screen(100, 30);
  screen.Feed(run.out);
  std::vector<std::string> rows = screen.Rows();
  ASSERT_GE(rows.size(), 3u) << run.out;
  EXPECT_EQ(rows.back().rfind("hoist: ", 0), 0u) << rows.back();
  EXPECT_EQ(rows[rows.size() - 2].rfind("Total: ", 0), 0u) << rows[rows.size() - 2];
}

// Not a terminal (auto) and --progress=plain: a line per state change with sizes, and not one
// control character besides the line feeds.
TEST_F(CliProgressTest, PlainLinesHaveSizesAndNoControlCharacters) {
  StallMiddleLayer(std::chrono::milliseconds(200));
  for (const char* flag : {"--progress=auto", "--progress=plain"}) {
    CliRun run = Hoist({"pull", flag, Ref()});
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    for (char c : run.out) {
      EXPECT_TRUE(c == '\n' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f))
          << flag << ": control character " << static_cast<int>(c) << " in\n"
          << run.out;
    }
    for (size_t i = 0; i < 3; ++i) {
      for (const char* state : {"Pulling fs layer", "Downloading", "Pull complete"}) {
        const std::regex line("(^|\n)" + Id(i) + ": " + state + " \\([0-9.]+MB\\)\n");
        EXPECT_TRUE(std::regex_search(run.out, line)) << state << "\n" << run.out;
      }
    }
    std::filesystem::remove_all(store_);
  }
}

// --progress=json: every line is an object; each layer's events are consistent and end
// complete (or already there); the last line is the result naming the digest; an error is an
// event too, besides the stderr line.
TEST_F(CliProgressTest, JsonEventsParseAndEndConsistently) {
  StallMiddleLayer(std::chrono::milliseconds(300));
  for (const char* want : {"pull_complete", "already_exists"}) {
    CliRun run = Hoist({"pull", "--progress=json", Ref()});
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    std::vector<nlohmann::json> events;
    for (const auto& line : Lines(run.out)) {
      events.push_back(nlohmann::json::parse(line, nullptr, false));
      ASSERT_TRUE(events.back().is_object()) << line;
      ASSERT_TRUE(events.back()["timestamp"].is_string()) << line;
    }
    ASSERT_GE(events.size(), 5u);
    EXPECT_EQ(events.front()["type"], "start");
    EXPECT_EQ(events.front()["reference"], Ref());
    std::map<std::string, nlohmann::json> last;
    int moving = 0;
    for (size_t i = 1; i + 1 < events.size(); ++i) {
      const nlohmann::json& e = events[i];
      ASSERT_EQ(e["type"], "progress") << e;
      const std::string layer = e["layer"];
      EXPECT_LE(e["current"].get<int64_t>(), e["total"].get<int64_t>()) << e;
      if (e["state"] == "downloading" && e["current"] > 0) ++moving;
      if (last.count(layer)) {
        EXPECT_NE(last[layer]["state"], "pull_complete") << "an event after the end: " << e;
      }
      last[layer] = e;
    }
    ASSERT_EQ(last.size(), 3u);
    for (const auto& l : image_.layers) {
      EXPECT_EQ(last[l.digest]["state"], want) << l.digest;
      EXPECT_EQ(last[l.digest]["total"], l.data.size());
    }
    if (std::string(want) == "pull_complete") {
      EXPECT_GE(moving, 1) << run.out;
    }
    const nlohmann::json& result = events.back();
    EXPECT_EQ(result["type"], "result");
    EXPECT_EQ(result["reference"], Ref());
    EXPECT_EQ(result["digest"], image_.manifest_digest);
  }

  CliRun missing = Hoist({"pull", "--progress=json", proxy_->host() + "/nosuch:1"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(Lines(missing.err).size(), 1u) << missing.err;
  std::vector<std::string> lines = Lines(missing.out);
  ASSERT_FALSE(lines.empty());
  auto error = nlohmann::json::parse(lines.back(), nullptr, false);
  EXPECT_EQ(error["type"], "error") << lines.back();
  EXPECT_EQ(error["code"], "NotFound") << lines.back();
  EXPECT_EQ("hoist: " + error["message"].get<std::string>() + "\n", missing.err);
}

}  // namespace
}  // namespace hoist

// The everyday commands of the hoist command line against the real registry: images (table,
// --digests, --format, filters), inspect (--format, --raw, --config), tag (CLI and library),
// --version, usage errors and exit codes, per-command help, shell completion and hoist(1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "base/strings.h"
#include "hoist/client.h"
#include "hoist/version.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuiltImage;
using testing::CliRun;
using testing::Format;

CliRun Hoist(const std::vector<std::string>& args, const std::string& dir) {
  return testing::RunCli(HOIST_CLI, args, dir);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A table row split at runs of two or more spaces (cells hold single spaces: "2 years ago").
std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> cells;
  std::regex sep(" {2,}");
  for (std::sregex_token_iterator it(row.begin(), row.end(), sep, -1), end; it != end; ++it) {
    cells.push_back(*it);
  }
  return cells;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The commands `hoist --help` lists.
std::vector<std::string> Commands(const std::string& dir) {
  CliRun help = Hoist({"--help"}, dir);
  std::vector<std::string> out;
  bool in_list = false;
  for (const std::string& line : Lines(help.out)) {
    if (line == "Subcommands:") {
      in_list = true;
    } else if (in_list && line.rfind("  ", 0) == 0) {
      out.push_back(Cells(line.substr(2))[0]);
    } else if (in_list) {
      break;
    }
  }
  return out;
}

BuiltImage Small(Format f, const std::string& word) {
  return testing::BuildImage(f, {{{"etc/", "", '5'}, {"etc/word", word}}});
}

class CliCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-cmd-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
  }
  // Starts the registry; false (and the test skipped) when it is not installed.
  void StartRegistry() {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto reg = testing::TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    reg_ = std::move(reg).value();
  }
  std::string Ref(const std::string& repo_tag) { return reg_->host() + "/" + repo_tag; }
  void PushAndPull(const BuiltImage& img, const std::string& repo, const std::string& tag) {
    ASSERT_TRUE(testing::PushImage(reg_->host(), repo, tag, img).ok());
    CliRun pull = Hoist({"--store", store_, "pull", "-q", Ref(repo + ":" + tag)}, dir_->path());
    ASSERT_EQ(pull.exit_code, 0) << pull.err;
  }
  CliRun Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return Hoist(args, dir_->path());
  }

  std::optional<testing::TempDir> dir_;
  std::string store_;
  std::unique_ptr<testing::TestRegistry> reg_;
};

TEST_F(CliCommandsTest, ImagesTableDigestsJsonAndFilter) {
  StartRegistry();
  BuiltImage one = Small(Format::kOci, "one"), two = Small(Format::kOci, "two");
  BuiltImage other = Small(Format::kDocker, "other");
  PushAndPull(one, "app", "1");
  PushAndPull(two, "app", "2");
  PushAndPull(other, "other", "1");

  CliRun table = Run({"images"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::vector<std::string> rows = Lines(table.out);
  ASSERT_EQ(rows.size(), 4u) << table.out;
  EXPECT_EQ(Cells(rows[0]),
            (std::vector<std::string>{"REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"}));
  std::vector<std::string> first = Cells(rows[1]);
  ASSERT_EQ(first.size(), 5u) << rows[1];
  EXPECT_EQ(first[0], Ref("app"));
  EXPECT_EQ(first[1], "1");
  EXPECT_EQ(first[2], one.manifest_digest.substr(7, 12));
  EXPECT_TRUE(std::regex_match(first[3], std::regex("[0-9.]+k?B"))) << first[3];
  EXPECT_TRUE(std::regex_match(first[4], std::regex("[0-9]+ years ago"))) << first[4];
  // Columns line up: every row's TAG starts where the header's does.
  const size_t tag_column = rows[0].find("TAG");
  for (const std::string& row : rows) {
    EXPECT_EQ(row.substr(tag_column - 3, 3), "   ") << row;
    EXPECT_EQ(row.substr(tag_column, Cells(row)[1].size()), Cells(row)[1]) << row;
  }

  CliRun digests = Run({"images", "--digests"});
  ASSERT_EQ(digests.exit_code, 0) << digests.err;
  EXPECT_EQ(Cells(Lines(digests.out)[3])[2], other.manifest_digest) << digests.out;

  CliRun json = Run({"images", "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << json.out;
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[2]["reference"], Ref("other:1"));
  EXPECT_EQ(j[2]["repository"], Ref("other"));
  EXPECT_EQ(j[2]["tag"], "1");
  EXPECT_EQ(j[2]["repoDigest"], other.manifest_digest);
  EXPECT_EQ(j[2]["created"], "2024-01-01T00:00:00Z");
  EXPECT_GT(j[2]["size"].get<int64_t>(), 0);

  // A bare name lists every tag of its repository; a tag names one image.
  CliRun repo = Run({"images", "--format", "/reference", Ref("app")});
  ASSERT_EQ(repo.exit_code, 0) << repo.err;
  EXPECT_EQ(repo.out, Ref("app:1") + "\n" + Ref("app:2") + "\n");
  CliRun tagged = Run({"images", "--format", "/tag", Ref("app:2")});
  EXPECT_EQ(tagged.out, "2\n");
  CliRun none = Run({"images", Ref("app:3")});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_EQ(Lines(none.out).size(), 1u) << none.out;

  CliRun missing = Run({"images", "--format", "/nosuch"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "hoist: images: --format \"/nosuch\": no such field\n");
}

TEST_F(CliCommandsTest, InspectFormatRawAndConfig) {
  StartRegistry();
  BuiltImage img = Small(Format::kDocker, "inspect");
  PushAndPull(img, "app", "1");

  CliRun type = Run({"inspect", "--format", "/configData/rootfs/type", Ref("app:1")});
  ASSERT_EQ(type.exit_code, 0) << type.err;
  EXPECT_EQ(type.out, "layers\n");
  CliRun env = Run({"inspect", "--format", "/configData/config/Env", Ref("app:1")});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(env.out, "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"]\n");
  CliRun layer = Run({"inspect", "--format", "/layers/0/digest", Ref("app:1")});
  EXPECT_EQ(layer.out, img.layers[0].digest + "\n");

  // The registry's own (Docker) manifest, byte for byte, not the OCI rendition the index lists.
  CliRun raw = Run({"inspect", "--raw", Ref("app:1")});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(raw.out, img.manifest);
  CliRun config = Run({"inspect", "--config", Ref("app:1")});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  EXPECT_EQ(config.out, img.config.data);

  CliRun absent = Run({"inspect", "--format", "/configData/nosuch", Ref("app:1")});
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_EQ(absent.err, "hoist: inspect " + Ref("app:1") +
                            ": --format \"/configData/nosuch\": no such field\n");
  CliRun bad = Run({"inspect", "--format", "configData", Ref("app:1")});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  CliRun both = Run({"inspect", "--raw", "--config", Ref("app:1")});
  EXPECT_EQ(both.exit_code, 2) << both.err;
  EXPECT_EQ(both.err, "hoist: inspect: --raw excludes --config; see 'hoist inspect --help'\n");
}

// --raw writes the stored bytes to a pipe, but never raw controls to a terminal.
TEST_F(CliCommandsTest, InspectRawEscapesOnlyOnATerminal) {
  std::string script;
  if (!testing::FindExecutable("script", &script)) GTEST_SKIP() << "script not installed";
  StartRegistry();
  BuiltImage img = Small(Format::kOci, "tty");
  auto manifest = nlohmann::json::parse(img.manifest);
  manifest["annotations"] = {{"note",
                              "csi\xc2\x9b"
                              "31m rlo\xe2\x80\xae"}};
  img.manifest = manifest.dump();
  img.manifest_digest = testing::Sha256Digest(img.manifest);
  PushAndPull(img, "app", "1");

  CliRun piped = Run({"inspect", "--raw", Ref("app:1")});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, img.manifest);

  const std::string wrapper = dir_->path() + "/tty.sh";
  std::ofstream(wrapper) << "exec '" << HOIST_CLI << "' --store '" << store_ << "' inspect --raw '"
                         << Ref("app:1") << "'\n";
  CliRun tty = testing::RunCli(script, {"-qec", "sh " + wrapper, "/dev/null"}, dir_->path());
  ASSERT_EQ(tty.exit_code, 0) << tty.err;
  EXPECT_EQ(tty.out.find("\xc2\x9b"), std::string::npos) << TerminalSafe(tty.out);
  EXPECT_EQ(tty.out.find("\xe2\x80\xae"), std::string::npos) << TerminalSafe(tty.out);
  EXPECT_NE(tty.out.find("csi\\u009b31m rlo\\u202e"), std::string::npos) << TerminalSafe(tty.out);
}

TEST_F(CliCommandsTest, TagRecordsTheSameManifestUnderAnotherName) {
  StartRegistry();
  BuiltImage img = Small(Format::kDocker, "tag");
  PushAndPull(img, "app", "1");

  CliRun tag = Run({"tag", Ref("app:1"), "local/copy:stable"});
  ASSERT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_EQ(tag.out, "");
  auto index = nlohmann::json::parse(std::ifstream(store_ + "/index.json"));
  ASSERT_EQ(index["manifests"].size(), 2u);
  EXPECT_EQ(index["manifests"][1]["digest"], index["manifests"][0]["digest"]);
  EXPECT_EQ(index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
            "docker.io/local/copy:stable");
  EXPECT_EQ(index["manifests"][1]["annotations"]["io.hoist.manifest.digest"], img.manifest_digest);

  // The new name outlives the old one, through rmi and gc.
  ASSERT_EQ(Run({"rmi", Ref("app:1")}).exit_code, 0);
  ASSERT_EQ(Run({"gc"}).exit_code, 0);
  CliRun inspect = Run({"inspect", "--format", "/repoDigest", "local/copy:stable"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(inspect.out, img.manifest_digest + "\n");
  CliRun verify = Run({"verify", "local/copy:stable"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  CliRun missing = Run({"tag", Ref("app:1"), "x:1"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "hoist: tag " + Ref("app:1") + " x:1: no such image in the store (pull it first)\n");
  CliRun digest = Run({"tag", "local/copy:stable", "x@" + img.manifest_digest});
  EXPECT_EQ(digest.exit_code, 1);
  EXPECT_NE(digest.err.find("takes a tag, not a digest"), std::string::npos) << digest.err;
  CliRun usage = Run({"tag", "local/copy:stable"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.err, "hoist: tag: DST is required; see 'hoist tag --help'\n");
}

TEST_F(CliCommandsTest, LibraryTagRetagsAndReplaces) {
  StartRegistry();
  BuiltImage a = Small(Format::kOci, "a"), b = Small(Format::kOci, "b");
  PushAndPull(a, "app", "a");
  PushAndPull(b, "app", "b");
  ClientOptions options;
  options.store_dir = store_;
  auto client = Client::Open(options);
  ASSERT_TRUE(client.ok()) << client.status().message();
  ASSERT_TRUE((*client)->Tag(Ref("app:a"), Ref("app:latest")).ok());
  auto image = (*client)->Inspect(Ref("app"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(image->repo_digest.String(), a.manifest_digest);
  // Tagging onto an existing name moves it.
  ASSERT_TRUE((*client)->Tag(Ref("app:b"), Ref("app:latest")).ok());
  image = (*client)->Inspect(Ref("app:latest"));
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->repo_digest.String(), b.manifest_digest);
  EXPECT_EQ(image->manifest_json, b.manifest);
  auto images = (*client)->Images();
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(images->size(), 3u);
  EXPECT_EQ((*client)->Tag(Ref("app:c"), Ref("app:d")).code(), StatusCode::kNotFound);
  EXPECT_EQ((*client)->Tag("Bad Name", Ref("app:d")).code(), StatusCode::kInvalidArgument);
}

TEST_F(CliCommandsTest, VersionNamesHoistAndItsLibraries) {
  CliRun v = Hoist({"--version"}, dir_->path());
  ASSERT_EQ(v.exit_code, 0) << v.err;
  std::vector<std::string> lines = Lines(v.out);
  ASSERT_EQ(lines.size(), 5u) << v.out;
  EXPECT_EQ(lines[0], "hoist " + Version());
  EXPECT_TRUE(std::regex_match(Version(), std::regex("[0-9]+\\.[0-9]+\\.[0-9]+")));
  std::vector<LibraryVersion> libs = LinkedLibraryVersions();
  ASSERT_EQ(libs.size(), 4u);
  const char* names[] = {"libcurl", "OpenSSL", "zstd", "isa-l"};
  for (size_t i = 0; i < libs.size(); ++i) {
    EXPECT_EQ(libs[i].name, names[i]);
    EXPECT_TRUE(std::regex_search(libs[i].version, std::regex("^[0-9]+\\.[0-9]+")))
        << libs[i].version;
    EXPECT_EQ(lines[i + 1].rfind(libs[i].name + " " + libs[i].version, 0), 0u) << lines[i + 1];
  }
}

// Misuse: one line on stderr with a hint, nothing on stdout, exit 2. Runtime errors: exit 1.
TEST_F(CliCommandsTest, UsageErrorsExitTwoWithAHint) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"foo"}, "hoist: unknown command \"foo\"; see 'hoist --help'\n"},
      {{"--store", "/x", "rmi2", "y"}, "hoist: unknown command \"rmi2\"; see 'hoist --help'\n"},
      {{"evil\x1b[2J"}, "hoist: unknown command \"evil\\x1b[2J\"; see 'hoist --help'\n"},
      {{}, "hoist: a command is required; see 'hoist --help'\n"},
      {{"pull"}, "hoist: pull: REF is required; see 'hoist pull --help'\n"},
      {{"pull", "--jobs", "0", "a"},
       "hoist: pull: --jobs: Value 0 not in range 1 to 64; see 'hoist pull --help'\n"},
      {{"images", "--bogus"}, ""},
      {{"images", "--format", "yaml"}, ""},
      {{"completion", "tcsh"}, ""},
      {{"help", "nosuch"}, "hoist: unknown command \"nosuch\"; see 'hoist --help'\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    CliRun r = Hoist(c.args, dir_->path());
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out, "");
    if (!c.err.empty()) {
      EXPECT_EQ(r.err, c.err);
    }
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("hoist: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("; see 'hoist "), std::string::npos) << r.err;
  }
  CliRun runtime = Hoist({"--store", store_, "inspect", "nosuch:1"}, dir_->path());
  EXPECT_EQ(runtime.exit_code, 1);
  EXPECT_EQ(Lines(runtime.err).size(), 1u) << runtime.err;
}

TEST_F(CliCommandsTest, EveryCommandHelpHasWhatFlagsAndExamples) {
  std::vector<std::string> commands = Commands(dir_->path());
  for (const char* expected : {"pull", "images", "inspect", "tag", "rmi", "completion"}) {
    EXPECT_NE(std::find(commands.begin(), commands.end(), expected), commands.end()) << expected;
  }
  EXPECT_EQ(std::find(commands.begin(), commands.end(), "help"), commands.end());
  EXPECT_GE(commands.size(), 15u);
  for (const std::string& cmd : commands) {
    SCOPED_TRACE(cmd);
    CliRun help = Hoist({cmd, "--help"}, dir_->path());
    ASSERT_EQ(help.exit_code, 0);
    std::vector<std::string> lines = Lines(help.out);
    ASSERT_FALSE(lines.empty());
    EXPECT_FALSE(lines[0].empty());  // what it does
    EXPECT_NE(help.out.find("Usage: hoist " + cmd), std::string::npos) << help.out;
    auto examples = std::find(lines.begin(), lines.end(), "Examples:");
    ASSERT_NE(examples, lines.end()) << help.out;
    int n = 0;
    for (auto it = examples + 1; it != lines.end() && it->rfind("  ", 0) == 0; ++it) {
      n += it->find("hoist ") != std::string::npos;
    }
    EXPECT_GE(n, 2) << help.out;
    EXPECT_LE(n, 3) << help.out;
    // `hoist help CMD` is the same text.
    EXPECT_EQ(Hoist({"help", cmd}, dir_->path()).out, help.out);
  }
}

// hoist(1): built by CMake from `hoist help --man`, it renders without warnings and has one
// section per command holding every flag that command's --help lists.
TEST_F(CliCommandsTest, ManPageRendersASectionPerCommand) {
  std::string man_path;
  if (!testing::FindExecutable("man", &man_path)) GTEST_SKIP() << "man not installed";
  const std::string page = ReadFile(HOIST_MAN);
  CliRun fresh = Hoist({"help", "--man"}, dir_->path());
  ASSERT_EQ(fresh.exit_code, 0);
  EXPECT_EQ(page, fresh.out) << "hoist.1 is stale";

  setenv("MANWIDTH", "200", 1);
  setenv("MANPAGER", "cat", 1);
  CliRun rendered = testing::RunCli(man_path, {"--warnings", "-l", HOIST_MAN}, dir_->path());
  unsetenv("MANWIDTH");
  unsetenv("MANPAGER");
  ASSERT_EQ(rendered.exit_code, 0) << rendered.err;
  EXPECT_EQ(rendered.err, "");
  std::string text = std::regex_replace(rendered.out, std::regex(".\b"), "");  // overstrikes
  for (const char* section : {"NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT"}) {
    EXPECT_NE(text.find("\n" + std::string(section) + "\n"), std::string::npos) << section;
  }
  for (const std::string& cmd : Commands(dir_->path())) {
    SCOPED_TRACE(cmd);
    size_t at = text.find("\n   hoist " + cmd);
    ASSERT_NE(at, std::string::npos) << text;
    size_t end = text.find("\n   hoist ", at + 1);
    std::string section = text.substr(at, end == std::string::npos ? end : end - at);
    EXPECT_NE(section.find("Examples:"), std::string::npos);
    std::string help = Hoist({cmd, "--help"}, dir_->path()).out;
    const std::regex flag("  (--[a-z-]+)");
    for (auto it = std::sregex_iterator(help.begin(), help.end(), flag);
         it != std::sregex_iterator(); ++it) {
      if ((*it)[1] == "--help") continue;
      EXPECT_NE(section.find((*it)[1].str()), std::string::npos) << (*it)[1];
    }
  }
}

class CompletionTest : public CliCommandsTest {
 protected:
  // Writes `hoist completion SHELL` to a file and returns its path.
  std::string Script(const std::string& shell) {
    CliRun r = Hoist({"completion", shell}, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string path = dir_->path() + "/hoist." + shell;
    std::ofstream(path) << r.out;
    return path;
  }
  // Runs the bash completion function for the command line `line` (completing at its end),
  // split into words as bash splits them (`words`), with the hoist binary first in PATH.
  std::vector<std::string> CompleteBash(const std::string& line,
                                        const std::vector<std::string>& words) {
    std::string script = Script("bash");
    std::string array;
    for (const auto& w : words) array += " " + ShellWord(w);
    std::string program = "set -u; PATH=" + ShellWord(fs::path(HOIST_CLI).parent_path().string()) +
                          ":$PATH; source " + ShellWord(script) +
                          "; complete -p hoist >&2; COMP_LINE=" + ShellWord(line) +
                          "; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(" + array +
                          "); COMP_CWORD=" + std::to_string(words.size() - 1) +
                          "; _hoist; printf '%s\\n' \"${COMPREPLY[@]}\"";
    // RunCli quotes arguments naively: the program goes through a file.
    const std::string program_path = dir_->path() + "/complete.sh";
    std::ofstream(program_path) << program << "\n";
    CliRun r = testing::RunCli("bash", {program_path}, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "complete -F _hoist hoist\n");
    std::vector<std::string> out = Lines(r.out);
    std::sort(out.begin(), out.end());
    out.erase(std::remove(out.begin(), out.end(), ""), out.end());
    return out;
  }
  static std::string ShellWord(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }
};

TEST_F(CompletionTest, ScriptsParse) {
  CliRun bash = testing::RunCli("bash", {"-n", Script("bash")}, dir_->path());
  EXPECT_EQ(bash.exit_code, 0) << bash.err;
  int checked = 1;
  for (const char* shell : {"zsh", "fish"}) {
    if (!testing::FindExecutable(shell)) continue;
    CliRun r = testing::RunCli(shell, {"-n", Script(shell)}, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << shell << ": " << r.err;
    ++checked;
  }
  RecordProperty("shells_checked", checked);
}

TEST_F(CompletionTest, BashCompletesCommandsFlagsAndStoreReferences) {
  StartRegistry();
  PushAndPull(Small(Format::kOci, "c1"), "app", "1");
  PushAndPull(Small(Format::kOci, "c2"), "base", "2");

  std::vector<std::string> commands = CompleteBash("hoist ", {"hoist", ""});
  EXPECT_NE(std::find(commands.begin(), commands.end(), "tag"), commands.end());
  EXPECT_NE(std::find(commands.begin(), commands.end(), "images"), commands.end());
  EXPECT_EQ(std::find(commands.begin(), commands.end(), "help"), commands.end());
  EXPECT_EQ(CompleteBash("hoist ta", {"hoist", "ta"}), std::vector<std::string>{"tag"});
  EXPECT_EQ(CompleteBash("hoist images --d", {"hoist", "images", "--d"}),
            std::vector<std::string>{"--digests"});
  EXPECT_EQ(CompleteBash("hoist completion ", {"hoist", "completion", ""}),
            (std::vector<std::string>{"bash", "fish", "zsh"}));

  // References from the store named by --store.
  EXPECT_EQ(CompleteBash("hoist --store " + store_ + " inspect ",
                         {"hoist", "--store", store_, "inspect", ""}),
            (std::vector<std::string>{Ref("app:1"), Ref("base:2")}));
  // unpack REF DEST: a reference first (after the last ':' bash splits at), then a path.
  EXPECT_EQ(CompleteBash("hoist --store " + store_ + " unpack " + Ref("b"),
                         {"hoist", "--store", store_, "unpack", Ref("b")}),
            std::vector<std::string>{Ref("base:2").substr(Ref("").find(':') + 1)});
  EXPECT_EQ(CompleteBash("hoist --store " + store_ + " unpack " + Ref("base:2") + " " + store_,
                         {"hoist", "--store", store_, "unpack", Ref("base:2"), store_}),
            std::vector<std::string>{store_});
  // bash splits "127.0.0.1:PORT/a" at ':'; only the part after the last ':' is completed.
  const std::string host = reg_->host();
  const std::string ip = host.substr(0, host.find(':'));
  const std::string after = host.substr(host.find(':') + 1);
  EXPECT_EQ(CompleteBash("hoist --store=" + store_ + " rmi " + host + "/a",
                         {"hoist", "--store", "=", store_, "rmi", ip, ":", after + "/a"}),
            std::vector<std::string>{after + "/app:1"});
}

TEST_F(CompletionTest, FishCompletesCommandsFlagsAndStoreReferences) {
  if (!testing::FindExecutable("fish")) GTEST_SKIP() << "fish is not installed";
  StartRegistry();
  PushAndPull(Small(Format::kOci, "c1"), "app", "1");
  PushAndPull(Small(Format::kOci, "c2"), "base", "2");
  // `complete -C LINE` prints fish's candidates for LINE, a tab and a description after each.
  auto complete = [&](const std::string& line) {
    const std::string program =
        "set PATH " + ShellWord(fs::path(HOIST_CLI).parent_path().string()) + " $PATH; source " +
        ShellWord(Script("fish")) + "; complete -C " + ShellWord(line);
    const std::string program_path = dir_->path() + "/complete.fish";
    std::ofstream(program_path) << program << "\n";
    CliRun r = testing::RunCli("fish", {program_path}, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> out;
    for (const std::string& l : Lines(r.out)) {
      if (!l.empty()) out.push_back(l.substr(0, l.find('\t')));
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(complete("hoist ta"), std::vector<std::string>{"tag"});
  EXPECT_EQ(complete("hoist images --dig"), std::vector<std::string>{"--digests"});
  EXPECT_EQ(complete("hoist --store " + store_ + " inspect "),
            (std::vector<std::string>{Ref("app:1"), Ref("base:2")}));
}

TEST_F(CompletionTest, ZshCompletesCommandsFlagsAndStoreReferences) {
  if (!testing::FindExecutable("zsh")) GTEST_SKIP() << "zsh is not installed";
  StartRegistry();
  PushAndPull(Small(Format::kOci, "c1"), "app", "1");
  PushAndPull(Small(Format::kOci, "c2"), "base", "2");
  // Runs _hoist for the words `words`, completing the last one, with zsh's completion
  // builtins replaced by functions that print the candidates offered (unfiltered by prefix).
  auto complete = [&](const std::vector<std::string>& words) {
    std::string array;
    for (const auto& w : words) array += " " + ShellWord(w);
    const std::string program =
        "compdef() { :; }\n"
        "compadd() { while [[ $1 != -- ]]; do shift; done; shift; print -l -- \"$@\"; }\n"
        "_describe() { local -a a; a=(\"${(@P)2}\"); print -l -- \"${a[@]%%:*}\"; }\n"
        "_files() { print -- FILES; }\n"
        "path=(" +
        ShellWord(fs::path(HOIST_CLI).parent_path().string()) + " $path)\nsource " +
        ShellWord(Script("zsh")) + "\nwords=(" + array +
        ")\nCURRENT=" + std::to_string(words.size()) + "\nPREFIX=" + ShellWord(words.back()) +
        "\n_hoist\n";
    const std::string program_path = dir_->path() + "/complete.zsh";
    std::ofstream(program_path) << program;
    CliRun r = testing::RunCli("zsh", {"-f", program_path}, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    std::vector<std::string> out = Lines(r.out);
    out.erase(std::remove(out.begin(), out.end(), ""), out.end());
    std::sort(out.begin(), out.end());
    return out;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::vector<std::string> commands = complete({"hoist", ""});
  EXPECT_TRUE(has(commands, "tag") && has(commands, "images") && !has(commands, "help"));
  EXPECT_TRUE(has(complete({"hoist", "images", "--d"}), "--digests"));
  EXPECT_EQ(complete({"hoist", "--store", store_, "inspect", ""}),
            (std::vector<std::string>{Ref("app:1"), Ref("base:2")}));
  EXPECT_EQ(complete({"hoist", "--store", store_, "unpack", Ref("app:1"), ""}),
            std::vector<std::string>{"FILES"});
}

}  // namespace
}  // namespace hoist

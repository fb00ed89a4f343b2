#include "support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/unique_fd.h"

extern char** environ;

namespace hoist::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

// posix_spawn argument vector pointing into `argv`.
std::vector<char*> CArgv(std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (std::string& a : argv) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

// Waits for `pid` up to `timeout`; returns true (and the wait status) once it has been reaped.
bool WaitFor(pid_t pid, std::chrono::milliseconds timeout, int* wstatus) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    pid_t r = ::waitpid(pid, wstatus, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void KillAndReap(pid_t pid, int grace_s) {
  int wstatus = 0;
  ::kill(pid, SIGTERM);
  if (WaitFor(pid, std::chrono::seconds(grace_s), &wstatus)) return;
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

// ---- TempDir ----

Result<TempDir> TempDir::Create(const std::string& prefix) {
  const char* base = ::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError(errno, "mkdtemp " + tmpl);
  return TempDir(tmpl);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;
  // Directories a test made unreadable would stop remove_all; give them back.
  for (auto it = std::filesystem::recursive_directory_iterator(
           path_, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

// ---- ChildProcess ----

Result<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv_in,
                                         const std::string& output_path) {
  if (argv_in.empty()) return InvalidArgumentError("spawn: empty argv");
  std::string binary;
  if (!FindExecutable(argv_in[0], &binary)) return NotFoundError("no executable " + argv_in[0]);
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  UniqueFd out(::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!out) return ErrnoError(errno, "open " + output_path);
  UniqueFd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_in) return ErrnoError(errno, "open /dev/null");
  std::vector<std::string> argv = argv_in;
  std::vector<char*> cargv = CArgv(argv);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError(errno, "fork for " + JoinArgv(argv));
  if (pid == 0) {
    // Dies with the test process even when that is killed without running destructors.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(null_in.get(), 0) < 0 || ::dup2(out.get(), 1) < 0 || ::dup2(out.get(), 2) < 0) {
      ::_exit(127);
    }
    ::execve(binary.c_str(), cargv.data(), environ);
    ::_exit(127);
  }
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Stop();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

bool ChildProcess::Running() {
  if (pid_ < 0) return false;
  int wstatus = 0;
  pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r == 0) return true;
  pid_ = -1;  // exited and reaped (or not our child any more)
  return false;
}

void ChildProcess::Stop(int grace_s) {
  if (pid_ < 0) return;
  KillAndReap(pid_, grace_s);
  pid_ = -1;
}

// ---- free functions ----

bool FindExecutable(const std::string& name, std::string* path) {
  auto check = [&](const std::string& candidate) {
    struct stat st;
    if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if (::access(candidate.c_str(), X_OK) != 0) return false;
    if (path != nullptr) *path = candidate;
    return true;
  };
  if (name.find('/') != std::string::npos) return check(name);
  const char* env = ::getenv("PATH");
  std::string dirs = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && check(dir + "/" + name)) return true;
    start = end + 1;
  }
  return false;
}

Result<std::string> RunCommand(std::vector<std::string> argv, int timeout_s) {
  if (argv.empty()) return InvalidArgumentError("run: empty argv");
  const std::string what = JoinArgv(argv);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe for " + what);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  std::vector<char*> cargv = CArgv(argv);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return ErrnoError(err, "spawn " + what);
  write_end.reset();

  constexpr size_t kMaxOutput = 16 << 20;
  std::string output;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // timeout is caught at the top
    char buf[65536];
    ssize_t got = ::read(read_end.get(), buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: every writer closed
    if (output.size() < kMaxOutput) {
      output.append(buf, std::min(static_cast<size_t>(got), kMaxOutput - output.size()));
    }
  }
  int wstatus = 0;
  if (timed_out) {
    KillAndReap(pid, 1);
    return UnavailableError(what + ": still running after " + std::to_string(timeout_s) +
                            " s; output: " + output);
  }
  if (!WaitFor(pid, std::chrono::seconds(std::max(timeout_s, 1)), &wstatus)) {
    KillAndReap(pid, 1);
    return UnavailableError(what + ": did not exit after closing its output");
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return output;
  std::string how = WIFEXITED(wstatus) ? "exit status " + std::to_string(WEXITSTATUS(wstatus))
                                       : "signal " + std::to_string(WTERMSIG(wstatus));
  return InternalError(what + ": " + how + "; output: " + output);
}

Result<int> PickFreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind 127.0.0.1:0");
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoError(errno, "getsockname");
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

CliRun RunCli(const std::string& binary, const std::vector<std::string>& args,
              const std::string& dir, const std::string& input) {
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::ofstream(dir + "/cli.in", std::ios::binary | std::ios::trunc) << input;
  std::string cmd = "timeout 120 '" + binary + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " <" + dir + "/cli.in >" + dir + "/cli.out 2>" + dir + "/cli.err";
  int rc = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(dir + "/cli.out");
  r.err = slurp(dir + "/cli.err");
  return r;
}

Status WriteFile(const std::string& path, std::string_view data) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ErrnoError(errno, "open " + path);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return InternalError("write " + path + " failed");
  return OkStatus();
}

}  // namespace hoist::testing

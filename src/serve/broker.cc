#include "serve/broker.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "content/index_file.h"

namespace hoist::serve {
namespace {

constexpr size_t kMaxMessageBytes = 4096;
constexpr size_t kMaxRecordsBytes = 128 << 20;  // index.json itself is capped at 64 MiB
constexpr int kChildSocket = 3;
constexpr auto kKillAfter = std::chrono::seconds(30);

// One message, with `fd` (when valid) passed along.
Status SendMessage(int sock, std::string_view text, int fd = -1) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return ErrnoError(errno, "serve: the broker socket");
  }
  return OkStatus();
}

// One message and the descriptor it carried, if any. NotFound at the end of the stream
// (the other side hung up); DataLoss for a message over kMaxMessageBytes or more than one fd.
Result<std::pair<std::string, UniqueFd>> ReceiveMessage(int sock) {
  std::string text(kMaxMessageBytes, '\0');
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) return ErrnoError(errno, "serve: the broker socket");
  }
  UniqueFd fd;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int received = -1;
      std::memcpy(&received, CMSG_DATA(c), sizeof received);
      fd.reset(received);
    }
  }
  if (n == 0) return NotFoundError("serve: the other process hung up");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return DataLossError("serve: a broker message too long or with too many descriptors");
  }
  text.resize(static_cast<size_t>(n));
  return std::make_pair(std::move(text), std::move(fd));
}

std::string Answer(const Status& s) {
  return std::to_string(static_cast<int>(s.code())) + " " + s.message();
}

// "<code> <text>" → the Status it stands for (OK with `text` in *rest).
Status ParseAnswer(std::string_view answer, std::string* rest) {
  size_t space = answer.find(' ');
  auto code = ParseDigits(answer.substr(0, space));
  if (space == std::string_view::npos || !code ||
      *code > static_cast<uint64_t>(StatusCode::kInternal)) {
    return InternalError("serve: a malformed answer from the broker");
  }
  std::string text(answer.substr(space + 1));
  if (*code != 0) return Status(static_cast<StatusCode>(*code), std::move(text));
  *rest = std::move(text);
  return OkStatus();
}

// The child's view: every question is a round trip to the parent, one at a time.
class BrokerView : public StoreView {
 public:
  explicit BrokerView(UniqueFd sock) : sock_(std::move(sock)) {}

  Result<std::shared_ptr<const std::vector<Descriptor>>> Records() override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(auto answer, Ask("R" + std::to_string(generation_)));
    auto generation = ParseDigits(answer.first);
    if (!generation) return InternalError("serve: a malformed generation from the broker");
    if (!answer.second.valid()) {
      if (*generation != generation_ || records_ == nullptr) {
        return InternalError("serve: the broker sent no records");
      }
      return records_;
    }
    ASSIGN_OR_RETURN(std::string text, ReadFdToString(answer.second.get(), kMaxRecordsBytes,
                                                      "the records from the broker"));
    ASSIGN_OR_RETURN(nlohmann::json list, ParseJson(text, "the records from the broker"));
    if (!list.is_array()) return InternalError("serve: the broker's records are not a list");
    auto records = std::make_shared<std::vector<Descriptor>>();
    for (const nlohmann::json& entry : list) {
      ASSIGN_OR_RETURN(Descriptor d, content::DescriptorFromJson(entry));
      records->push_back(std::move(d));
    }
    records_ = std::move(records);
    generation_ = *generation;
    return records_;
  }

  Result<UniqueFd> OpenBlob(const Digest& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(auto answer, Ask("B" + d.String()));
    if (!answer.second.valid()) return InternalError("serve: the broker sent no blob");
    return std::move(answer.second);
  }

  // Tells the parent why the child could not start; it returns that from RunSeparated.
  void Fail(const Status& s) { (void)SendMessage(sock_.get(), "E" + Answer(s)); }

 private:
  Result<std::pair<std::string, UniqueFd>> Ask(const std::string& question) {
    RETURN_IF_ERROR(SendMessage(sock_.get(), question));
    auto answer = ReceiveMessage(sock_.get());
    if (!answer.ok()) {
      return UnavailableError("serve: no answer from the process holding the store: " +
                              answer.status().message());
    }
    std::string rest;
    RETURN_IF_ERROR(ParseAnswer(answer->first, &rest));
    return std::make_pair(std::move(rest), std::move(answer->second));
  }

  UniqueFd sock_;
  std::mutex mu_;
  uint64_t generation_ = 0;  // of records_; 0: none yet
  std::shared_ptr<const std::vector<Descriptor>> records_;
};

// The parent's side: the store's view and the records last packed into a memfd.
class Broker {
 public:
  explicit Broker(const content::Store& store) : view_(OpenStoreView(store)) {}

  // Answers one question; a failure the child reports instead goes to *failure.
  void Handle(int sock, std::string_view question, Status* failure) {
    const char op = question.empty() ? '\0' : question[0];
    const std::string_view arg = question.empty() ? question : question.substr(1);
    if (op == 'E') {
      std::string rest;
      Status s = ParseAnswer(arg, &rest);
      *failure = s.ok() ? InternalError("serve: the serving process failed to start") : s;
      return;
    }
    Result<UniqueFd> fd = InvalidArgumentError("serve: not a broker question");
    std::string ok = "0 ";
    if (op == 'R') {
      fd = Records(ParseDigits(arg));
      ok += std::to_string(generation_);
    } else if (op == 'B') {
      auto d = Digest::Parse(arg);
      fd = d.ok() ? view_->OpenBlob(*d) : Result<UniqueFd>(d.status());
    }
    // A child that went away is seen by the loop.
    (void)(fd.ok() ? SendMessage(sock, ok, fd->get()) : SendMessage(sock, Answer(fd.status())));
  }

 private:
  // A descriptor of the records when they differ from the child's `generation`, else none.
  Result<UniqueFd> Records(std::optional<uint64_t> generation) {
    ASSIGN_OR_RETURN(auto records, view_->Records());
    if (records != packed_for_ || !packed_.valid()) {
      nlohmann::json list = nlohmann::json::array();
      for (const Descriptor& d : *records) list.push_back(content::DescriptorToJson(d));
      const std::string text = list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      UniqueFd fd(memfd_create("hoist-records", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (!fd.valid()) return ErrnoError(errno, "serve: memfd");
      for (size_t done = 0; done < text.size();) {
        ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError(errno, "serve: memfd");
        done += static_cast<size_t>(n);
      }
      if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) !=
          0) {
        return ErrnoError(errno, "serve: sealing the records");
      }
      packed_ = std::move(fd);
      packed_for_ = records;
      ++generation_;
    }
    if (generation && *generation == generation_) return UniqueFd();
    UniqueFd copy(fcntl(packed_.get(), F_DUPFD_CLOEXEC, 0));
    if (!copy.valid()) return ErrnoError(errno, "serve: memfd");
    return copy;
  }

  std::unique_ptr<StoreView> view_;
  std::shared_ptr<const std::vector<Descriptor>> packed_for_;
  UniqueFd packed_;
  uint64_t generation_ = 0;
};

// Lookups that retry with a larger buffer while it is too small.
template <typename Entry, typename Fn>
Result<std::optional<Entry>> LookUp(Fn fn) {
  std::vector<char> buf(16384);
  for (int i = 0; i < 8; ++i) {
    Entry entry{};
    Entry* found = nullptr;
    int err = fn(&entry, buf.data(), buf.size(), &found);
    if (err == ERANGE) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (err != 0) return ErrnoError(err, "serve: the user database");
    if (found == nullptr) return std::optional<Entry>();
    return std::optional<Entry>(entry);
  }
  return ResourceExhaustedError("serve: a user database entry too large");
}

[[noreturn]] void RunChild(int sock, pid_t parent, const Identity& id,
                           const std::function<Status()>& prepare,
                           const std::function<int(StoreView&)>& serve) {
  // Only 0-2 and the socket, as descriptor 3, stay open: nothing of the store.
  if (sock != kChildSocket && dup2(sock, kChildSocket) < 0) _exit(127);
  close_range(kChildSocket + 1, ~0U, 0);
  BrokerView view{UniqueFd(kChildSocket)};
  Status s = prepare();
  if (s.ok()) s = DropPrivileges(id);
  if (s.ok() && prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) s = ErrnoError(errno, "serve: prctl");
  if (s.ok() && getppid() != parent) s = CancelledError("serve: the broker ended");
  if (!s.ok()) {
    view.Fail(s);
    _exit(1);
  }
  int code = serve(view);
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace

Result<Identity> ParseIdentity(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string user = spec.substr(0, colon);
  const std::optional<std::string> group =
      colon == std::string::npos ? std::nullopt : std::optional(spec.substr(colon + 1));
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("--user " + Quote(spec) + ": " + why);
  };
  if (user.empty() || (group && group->empty())) return bad("want USER or USER:GROUP");
  Identity id;
  std::optional<gid_t> primary;
  if (auto number = ParseDigits(user); number && *number < 0x7fffffff) {
    id.uid = static_cast<uid_t>(*number);
    ASSIGN_OR_RETURN(auto pw, LookUp<passwd>([&](passwd* e, char* b, size_t n, passwd** f) {
                       return getpwuid_r(id.uid, e, b, n, f);
                     }));
    if (pw) primary = pw->pw_gid;
  } else if (user.find_first_not_of("0123456789") == std::string::npos) {
    return bad("not a user id");
  } else {
    ASSIGN_OR_RETURN(auto pw, LookUp<passwd>([&](passwd* e, char* b, size_t n, passwd** f) {
                       return getpwnam_r(user.c_str(), e, b, n, f);
                     }));
    if (!pw) return NotFoundError("--user: no user " + Quote(user));
    id.uid = pw->pw_uid;
    primary = pw->pw_gid;
  }
  if (!group) {
    if (!primary) return bad("no such user in the passwd database: give USER:GROUP");
    id.gid = *primary;
  } else if (auto number = ParseDigits(*group); number && *number < 0x7fffffff) {
    id.gid = static_cast<gid_t>(*number);
  } else {
    ASSIGN_OR_RETURN(
        auto gr, LookUp<struct group>([&](struct group* e, char* b, size_t n, struct group** f) {
          return getgrnam_r(group->c_str(), e, b, n, f);
        }));
    if (!gr) return NotFoundError("--user: no group " + Quote(*group));
    id.gid = gr->gr_gid;
  }
  if (id.uid == 0) return bad("not an unprivileged user (uid 0)");
  if (id.gid == 0) return bad("not an unprivileged group (gid 0)");
  return id;
}

Status DropPrivileges(const Identity& id) {
  if (id.uid == 0 || id.gid == 0) return InvalidArgumentError("serve: dropping to root");
  if (setgroups(0, nullptr) != 0) return ErrnoError(errno, "serve: setgroups");
  if (setresgid(id.gid, id.gid, id.gid) != 0) return ErrnoError(errno, "serve: setresgid");
  if (setresuid(id.uid, id.uid, id.uid) != 0) return ErrnoError(errno, "serve: setresuid");
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != id.uid ||
      eu != id.uid || su != id.uid || rg != id.gid || eg != id.gid || sg != id.gid ||
      getgroups(0, nullptr) != 0 || setresuid(0, 0, 0) == 0 || setgroups(0, nullptr) == 0) {
    return InternalError("serve: the process kept a privilege after dropping to uid " +
                         std::to_string(id.uid));
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return ErrnoError(errno, "serve: no_new_privs");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return ErrnoError(errno, "serve: dumpable");
  return OkStatus();
}

Result<int> RunSeparated(const content::Store& store, const Identity& id,
                         const std::atomic<bool>& stop, const std::function<Status()>& prepare,
                         const std::function<int(StoreView&)>& serve) {
  if (geteuid() != 0) {
    return FailedPreconditionError("serve: --user needs root (it starts as root to drop to it)");
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoError(errno, "serve: socketpair");
  }
  UniqueFd sock(pair[0]), child_end(pair[1]);
  Broker broker(store);
  std::fflush(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return ErrnoError(errno, "serve: fork");
  if (pid == 0) RunChild(child_end.get(), parent, id, prepare, serve);
  child_end.reset();

  Status failure;
  bool signalled = false, killed = false;
  std::chrono::steady_clock::time_point kill_at;
  int wstatus = 0;
  while (true) {
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return ErrnoError(errno, "serve: waitpid");
    if (stop.load() && !signalled) {
      kill(pid, SIGTERM);
      signalled = true;
      kill_at = std::chrono::steady_clock::now() + kKillAfter;
    }
    if (signalled && !killed && std::chrono::steady_clock::now() > kill_at) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (!sock.valid()) {  // the child hung up but lives on: wait for it to end
      struct timespec pause = {0, 100 * 1000 * 1000};
      nanosleep(&pause, nullptr);
      continue;
    }
    pollfd p{sock.get(), POLLIN, 0};
    int n = poll(&p, 1, 100);
    if (n <= 0) continue;
    auto question = ReceiveMessage(sock.get());
    if (!question.ok()) {
      // Hung up, or broke the protocol: either way it gets no more answers.
      sock.reset();
      continue;
    }
    broker.Handle(sock.get(), question->first, &failure);
  }
  if (!failure.ok()) return failure;
  if (WIFSIGNALED(wstatus)) {
    return InternalError("serve: the serving process ended by signal " +
                         std::to_string(WTERMSIG(wstatus)));
  }
  return WEXITSTATUS(wstatus);
}

}  // namespace hoist::serve

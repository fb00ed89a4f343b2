// Usage errors, examples, hoist(1) and `hoist help`, generated from the CLI11 definition.
#include "help.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "base/strings.h"
#include "hoist/version.h"

namespace hoist::cli {

// What `hoist --help` and hoist(1) say about exit codes.
constexpr char kExitStatusText[] =
    "0 success; 1 the command failed (registry, network, store, image not found; verify found a "
    "problem); 2 usage error (unknown command or flag, missing or invalid argument); 130 "
    "interrupted (SIGINT, SIGTERM)";

constexpr char kManDescription[] =
    "hoist pulls container images (Docker and OCI) from registries that speak the OCI "
    "distribution API, verifies every byte while it streams, and keeps them in a crash-safe, "
    "content-addressed store that is an OCI image layout. Each command below also shows its "
    "flags and examples with hoist COMMAND --help.";

struct Example {
  const char* command;
  const char* what;
};

// Two or three examples per command: shown by `hoist COMMAND --help` and in hoist(1).
static const std::map<std::string, std::vector<Example>>& Examples() {
  static const auto* examples = new std::map<std::string, std::vector<Example>>{
      {"pull",
       {{"hoist pull alpine:3.20", "docker.io/library/alpine:3.20"},
        {"hoist pull --platform linux/arm64 alpine:3.20", "one platform of a multi-platform image"},
        {"hoist pull -q ghcr.io/org/app@sha256:<digest>", "by digest; prints only the reference"}}},
      {"images",
       {{"hoist images", "a table of every image"},
        {"hoist images --digests alpine", "every tag of alpine, with full digests"},
        {"hoist images --format /reference", "one reference a line (for scripts)"}}},
      {"inspect",
       {{"hoist inspect alpine:3.20", "manifest, platform, config and layers as JSON"},
        {"hoist inspect --format /configData/config/Env alpine:3.20", "one field (JSON pointer)"},
        {"hoist inspect --raw alpine:3.20 | sha256sum", "the manifest exactly as stored"}}},
      {"tag",
       {{"hoist tag alpine:3.20 alpine:stable", "a second name for the same image"},
        {"hoist tag ghcr.io/org/app@sha256:<digest> app:pinned",
         "name an image pulled by digest"}}},
      {"unpack",
       {{"hoist unpack alpine:3.20 ./rootfs", "the flattened root filesystem"},
        {"hoist unpack --bundle alpine:3.20 ./bundle", "an OCI runtime bundle"}}},
      {"mount",
       {{"hoist mount alpine:3.20 /mnt/alpine", "read-only overlay (root)"},
        {"hoist mount --rw alpine:3.20 /mnt/alpine", "writable, with a scratch upper dir"}}},
      {"umount",
       {{"hoist umount /mnt/alpine", "unmount and remove its scratch dirs"},
        {"hoist --store /srv/hoist umount /mnt/app", "a mount made from another store"}}},
      {"login",
       {{"hoist login -u alice --password-stdin registry.example.com < pw.txt", ""},
        {"hoist login", "docker.io, asking for user and password"}}},
      {"logout", {{"hoist logout registry.example.com", ""}, {"hoist logout", "docker.io"}}},
      {"config",
       {{"hoist config ghcr.io/org/app:1", "endpoints, TLS and credential source"},
        {"hoist config --tls-verify=true 127.0.0.1:5000/app:1", ""},
        {"hoist config --signature-policy policy.json 127.0.0.1:5000/app:1",
         "and which signature policy applies"}}},
      {"trust",
       {{"hoist trust show 127.0.0.1:5000/signed/app:1",
         "policy scope, requirements, keys, signature sources"},
        {"hoist --signature-policy policy.json --registries.d sigs.d trust show app:1", ""}}},
      {"rmi",
       {{"hoist rmi alpine:3.20", "remove the record; blobs stay until gc"},
        {"hoist rmi alpine:3.20 alpine:stable", "several at once"}}},
      {"gc",
       {{"hoist gc", "remove what no image needs"},
        {"hoist gc --timeout 0", "do not wait for pulls in progress"}}},
      {"verify",
       {{"hoist verify", "re-hash the whole store"},
        {"hoist verify --repair alpine:3.20", "remove what is corrupt; then pull again"}}},
      {"df",
       {{"hoist df", "usage, and what gc would reclaim"},
        {"hoist df --ingest-max-age 0", "count every partial download as reclaimable"}}},
      {"serve",
       {{"hoist serve", "the store on 127.0.0.1:5000, for nodes that list it as a mirror"},
        {"hoist serve --listen 10.0.0.5:5000 --htpasswd FILE --tls-cert C --tls-key K",
         "beyond this host: Basic auth over TLS"},
        {"hoist serve --user hoist-serve --access-log -",
         "as root: HTTP from a process running as hoist-serve; requests on stderr"}}},
      {"load",
       {{"hoist load -i alpine.tar", "a docker save or oci-archive tarball (gzip/zstd too)"},
        {"zcat app.tar.gz | hoist load", "from standard input"},
        {"hoist load --input-layout ./layout:v1 --tag app:1", "an OCI layout directory"}}},
      {"save",
       {{"hoist save -o alpine.tar alpine:3.20", "docker-archive, for docker load"},
        {"hoist save --format oci-archive -o app.tar app:1 app:2", "one OCI archive, two images"}}},
      {"copy",
       {{"hoist copy docker://alpine:3.20 oci-archive:alpine.tar", "registry to archive"},
        {"hoist copy hoist:app:1 oci:./layout:v1", "the store to an OCI layout"},
        {"hoist copy --all docker://alpine:3.20 docker://mirror:5000/alpine:3.20",
         "every platform"}}},
      {"push",
       {{"hoist push 127.0.0.1:5000/app:1", "to the registry its name says"},
        {"hoist push app:1 registry.example.com/team/app:1", "under another name"}}},
      {"completion",
       {{"source <(hoist completion bash)", "in ~/.bashrc"},
        {"hoist completion zsh > \"${fpath[1]}/_hoist\"", ""},
        {"hoist completion fish > ~/.config/fish/completions/hoist.fish", ""}}},
  };
  return *examples;
}

static std::string ExamplesText(const std::vector<Example>& examples) {
  size_t width = 0;
  for (const auto& e : examples) width = std::max(width, std::strlen(e.command));
  std::string text = "Examples:\n";
  for (const auto& e : examples) {
    std::string line = std::string("  ") + e.command;
    if (*e.what != '\0') {
      line += std::string(width - std::strlen(e.command) + 2, ' ') + "# " + e.what;
    }
    text += line + "\n";
  }
  return text;
}

// The commands `hoist --help`, hoist(1) and completion show (hidden ones have no group).
std::vector<const CLI::App*> VisibleCommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

std::vector<const CLI::Option*> Flags(const CLI::App& cmd) {
  return cmd.get_options([](const CLI::Option* o) { return o->nonpositional(); });
}
std::vector<const CLI::Option*> Positionals(const CLI::App& cmd) {
  return cmd.get_options([](const CLI::Option* o) { return o->get_positional(); });
}

std::vector<std::string> FlagNames(const CLI::Option& o) {
  std::vector<std::string> names;
  for (const auto& s : o.get_snames()) names.push_back("-" + s);
  for (const auto& l : o.get_lnames()) names.push_back("--" + l);
  return names;
}

bool TakesValue(const CLI::Option& o) { return o.get_expected_max() > 0; }

static std::string PositionalUsage(const CLI::Option& o) {
  std::string n = o.get_name();
  if (o.get_expected_max() > 1) n += "...";
  return o.get_required() ? n : "[" + n + "]";
}

// Examples shown after each command's own --help, and the exit codes after `hoist --help`.
void AddFooters(CLI::App& app) {
  for (auto& [name, examples] : Examples()) {
    for (CLI::App* cmd : app.get_subcommands([&](CLI::App* s) { return s->get_name() == name; })) {
      cmd->footer(ExamplesText(examples));
    }
  }
  app.footer(std::string("Exit status: ") + kExitStatusText +
             "\nRun 'hoist COMMAND --help' for a command's flags and examples.");
}

// roff text: backslashes, leading dots and quotes, and dashes made literal.
static std::string Roff(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

static void ManOptions(std::string& man, const CLI::App& cmd) {
  for (const CLI::Option* o : Flags(cmd)) {
    // -h, --help: once, under GLOBAL OPTIONS.
    if (cmd.get_parent() != nullptr && o == cmd.get_help_ptr()) continue;
    std::string names;
    for (const auto& n : FlagNames(*o))
      names += (names.empty() ? "" : ", ") + ("\\fB" + Roff(n) + "\\fR");
    if (TakesValue(*o)) names += " \\fI" + Roff(o->get_type_name()) + "\\fR";
    man += ".TP\n" + names + "\n" + Roff(o->get_description()) + "\n";
  }
  for (const CLI::Option* o : Positionals(cmd)) {
    man += ".TP\n\\fI" + Roff(o->get_name()) + "\\fR\n" + Roff(o->get_description()) + "\n";
  }
}

// hoist(1) in roff, from the same definitions as --help: one section per visible command.
std::string ManPage(const CLI::App& app) {
  std::string man = ".TH HOIST 1 \"\" \"hoist " + hoist::Version() + "\" \"User Commands\"\n";
  std::string about = app.get_description();
  if (about.rfind("hoist: ", 0) == 0) about = about.substr(7);
  man += ".SH NAME\nhoist \\- " + Roff(about) + "\n";
  man +=
      ".SH SYNOPSIS\n.B hoist\n[\\fB\\-\\-store\\fR \\fIDIR\\fR] \\fICOMMAND\\fR "
      "[\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n";
  man += ".SH DESCRIPTION\n" + Roff(kManDescription) + "\n";
  man += ".SH GLOBAL OPTIONS\n";
  ManOptions(man, app);
  man += ".SH COMMANDS\n";
  for (const CLI::App* cmd : VisibleCommands(app)) {
    std::string usage = "hoist " + cmd->get_name();
    if (Flags(*cmd).size() > 1) usage += " [OPTIONS]";  // more than --help
    for (const CLI::Option* o : Positionals(*cmd)) usage += " " + PositionalUsage(*o);
    man += ".SS " + Roff(usage) + "\n" + Roff(cmd->get_description()) + ".\n";
    ManOptions(man, *cmd);
    auto examples = Examples().find(cmd->get_name());
    if (examples != Examples().end()) {
      man += ".PP\nExamples:\n.PP\n.nf\n";
      // The lines --help shows, after its "Examples:" heading.
      std::string text = ExamplesText(examples->second);
      man += Roff(text.substr(text.find('\n') + 1));
      man += ".fi\n";
    }
  }
  man += ".SH EXIT STATUS\n" + Roff(kExitStatusText) + ".\n";
  man +=
      ".SH ENVIRONMENT\n"
      ".TP\n.B HOIST_STORE\nThe store directory when \\fB\\-\\-store\\fR is not given.\n"
      ".TP\n.B HOIST_CREDS\nUSER:PASSWORD for the image's own registry (as \\fB\\-\\-creds\\fR).\n"
      ".TP\n.B HOIST_REGISTRIES_CONF\nThe containers\\-registries.conf(5) file to read.\n"
      ".TP\n.BR DOCKER_CONFIG \", \" REGISTRY_AUTH_FILE\nWhere stored credentials are read.\n";
  man += ".SH SEE ALSO\ncontainers\\-registries.conf(5), skopeo(1), umoci(1)\n";
  return man;
}

// ---- shell completion ----

// `hoist help [--man [-o FILE]] [COMMAND]`.
int Help(const CLI::App& app, const std::string& command, bool man, const std::string& output) {
  if (man) {
    std::string page = ManPage(app);
    if (output.empty()) {
      std::printf("%s", page.c_str());
      return 0;
    }
    std::ofstream out(output, std::ios::trunc | std::ios::binary);
    out << page;
    out.close();
    if (!out) {
      std::fprintf(stderr, "hoist: help --man: cannot write %s\n", hoist::Quote(output).c_str());
      return 1;
    }
    return 0;
  }
  if (command.empty()) {
    std::printf("%s", app.help().c_str());
    return 0;
  }
  auto found = app.get_subcommands(
      [&](const CLI::App* s) { return s->get_name() == command && !s->get_group().empty(); });
  const CLI::App* cmd = found.empty() ? nullptr : found[0];
  if (cmd == nullptr) {
    std::fprintf(stderr, "hoist: unknown command %s; see 'hoist --help'\n",
                 hoist::Quote(command).c_str());
    return kExitUsage;
  }
  std::printf("%s", cmd->help("hoist").c_str());
  return 0;
}

// Parses argv into `app`. nullopt: go on and run the command. Otherwise the exit code: 0 after
// --help or --version (printed), kExitUsage after a usage error, reported as one line on stderr
// with a hint: `hoist: unknown command "foo"; see 'hoist --help'`.
std::optional<int> ParseArguments(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::vector<CLI::App*> parsed = app.get_subcommands();
    std::string message;
    std::string hint = "hoist --help";
    if (parsed.empty()) {
      std::vector<std::string> rest = app.remaining();
      auto word = std::find_if(rest.begin(), rest.end(),
                               [](const std::string& a) { return !a.starts_with("-"); });
      if (word != rest.end()) {
        message = "unknown command " + hoist::Quote(*word);
      } else if (e.get_name() == "RequiredError" && rest.empty() &&
                 std::string(e.what()).find("subcommand") != std::string::npos) {
        message = "a command is required";
      }
    } else {
      hint = "hoist " + parsed[0]->get_name() + " --help";
    }
    if (message.empty()) {
      message = e.what();
      std::replace(message.begin(), message.end(), '\n', ' ');
      while (!message.empty() && message.back() == ' ') message.pop_back();
      message = hoist::TerminalSafe(message);
      if (!parsed.empty()) message = parsed[0]->get_name() + ": " + message;
    }
    std::fprintf(stderr, "hoist: %s; see '%s'\n", message.c_str(), hint.c_str());
    return kExitUsage;
  }
}

}  // namespace hoist::cli

// The parts of the command line generated from its CLI11 definition, so that they cannot drift
// from it: usage errors, per-command examples (shown by --help), hoist(1), shell completion.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hoist::cli {

// Exit status of a usage error (unknown command or flag, missing or invalid argument).
inline constexpr int kExitUsage = 2;

// Adds each command's examples after its --help, and the exit codes after `hoist --help`.
void AddFooters(CLI::App& app);

// Parses argv into `app`. nullopt: go on and run the command. Otherwise the exit code: 0 after
// --help or --version (printed), kExitUsage after a usage error, reported as one line on stderr
// with a hint: `hoist: unknown command "foo"; see 'hoist --help'`.
std::optional<int> ParseArguments(CLI::App& app, int argc, char** argv);

// hoist(1) in roff: one section per visible command with its flags and examples.
std::string ManPage(const CLI::App& app);

// `hoist help [--man [-o FILE]] [COMMAND]`: the man page, or a command's --help text.
int Help(const CLI::App& app, const std::string& command, bool man, const std::string& output);

// `hoist completion SHELL` for "bash", "zsh" or "fish" (the caller checks the name).
std::string CompletionScript(const CLI::App& app, const std::string& shell);

// What the generators read from the definition. Hidden commands (no group) are left out.
std::vector<const CLI::App*> VisibleCommands(const CLI::App& app);
std::vector<const CLI::Option*> Flags(const CLI::App& cmd);
std::vector<const CLI::Option*> Positionals(const CLI::App& cmd);
std::vector<std::string> FlagNames(const CLI::Option& o);  // "-q", "--quiet"
bool TakesValue(const CLI::Option& o);

}  // namespace hoist::cli

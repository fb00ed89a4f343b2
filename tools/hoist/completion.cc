// Shell completion scripts, generated from the CLI11 definition: commands, flags (and which take
// a value), fixed choices, and which arguments are image references, listed at completion time
// by `hoist images --format /reference`.
#include <algorithm>
#include <string>
#include <vector>

#include "help.h"

namespace hoist::cli {

// A positional argument completed with the store's image references.
static bool IsImageArgument(const CLI::Option& o) {
  const std::string& n = o.get_name();
  return n == "REF" || n == "SRC" || n == "DST";
}

constexpr int kAllRefs = 99;

struct CompletionCommand {
  std::string name, description;
  std::vector<std::string> flags;         // every name: -q, --quiet
  std::vector<std::string> valued_flags;  // those taking a value
  std::vector<std::string> words;         // fixed choices for the positional argument
  // How many leading positional arguments are image references (kAllRefs: every one).
  int image_refs = 0;
};

static std::vector<CompletionCommand> CompletionCommands(const CLI::App& app) {
  std::vector<CompletionCommand> out;
  auto add = [&](const CLI::App& cmd, const std::string& name) {
    CompletionCommand c{name, cmd.get_description(), {}, {}, {}, false};
    for (const CLI::Option* o : Flags(cmd)) {
      for (const auto& n : FlagNames(*o)) {
        c.flags.push_back(n);
        if (TakesValue(*o)) c.valued_flags.push_back(n);
      }
    }
    for (const CLI::Option* o : Positionals(cmd)) {
      if (!IsImageArgument(*o)) break;
      c.image_refs = o->get_expected_max() > 1 ? kAllRefs : c.image_refs + 1;
    }
    if (name == "completion") c.words = {"bash", "zsh", "fish"};
    // A command of commands (`trust show`): their names are its words.
    for (const CLI::App* sub : cmd.get_subcommands({})) c.words.push_back(sub->get_name());
    out.push_back(std::move(c));
  };
  add(app, "");
  for (const CLI::App* cmd : VisibleCommands(app)) add(*cmd, cmd->get_name());
  return out;
}

static std::string Joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// For single-quoted shell words: ' as '\''.
static std::string ShellQuoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

static std::string BashCompletion(const CLI::App& app) {
  std::string commands;
  std::string cases;
  for (const auto& c : CompletionCommands(app)) {
    if (!c.name.empty()) commands += (commands.empty() ? "" : " ") + c.name;
    cases += "    " + (c.name.empty() ? std::string("''") : c.name) +
             ")\n      flags=" + ShellQuoted(Joined(c.flags)) +
             "\n      valued=" + ShellQuoted(Joined(c.valued_flags)) +
             "\n      choices=" + ShellQuoted(Joined(c.words)) +
             "\n      refs=" + std::to_string(c.image_refs) + " ;;\n";
  }
  return R"(# bash completion for hoist, written by `hoist completion bash`.
# Completes commands, flags, and image references from the store (--store on the command line,
# else $HOIST_STORE, else the default store). Words are taken from the line itself, so that
# host:port and name:tag stay whole.
_hoist() {
  local line=${COMP_LINE:0:COMP_POINT}
  local cur=${line##*[[:space:]]}
  local -a argv store=()
  read -ra argv <<< "${line:0:${#line}-${#cur}}"
  local prev=${argv[${#argv[@]}-1]}
  local cmd="" i=1 n=0 w
  for ((; i < ${#argv[@]}; i++)); do
    w=${argv[i]}
    case $w in
      --store) store=(--store "${argv[i+1]}"); ((i++)) ;;
      --store=*) store=(--store "${w#--store=}") ;;
      -*) ;;
      *) cmd=$w; break ;;
    esac
  done
  local flags valued choices refs
  case $cmd in
)" + cases +
         R"(    *) return ;;
  esac
  # Positional arguments before the current word.
  for ((i++; i < ${#argv[@]}; i++)); do
    w=${argv[i]}
    if [[ " $valued " == *" $w "* ]]; then ((i++)); elif [[ $w != -* ]]; then ((n++)); fi
  done
  COMPREPLY=()
  if [[ " $valued " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W ")" +
         commands + R"(" -- "$cur"))
  elif [[ -n $choices ]]; then
    COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  elif ((n < refs)); then
    local r
    while IFS= read -r r; do
      [[ $r == "$cur"* ]] && COMPREPLY+=("$r")
    done < <(command "${argv[0]}" "${store[@]}" images --format /reference 2>/dev/null)
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  # bash splits words at ':' (host:port, name:tag): complete only the part after the last one.
  if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
    local colon=${cur%"${cur##*:}"}
    for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$colon"}; done
  fi
}
complete -F _hoist hoist
)";
}

// zsh: _describe takes "name:description"; colons in the description are escaped.
static std::string ZshDescribed(const std::string& name, const std::string& description) {
  std::string d;
  for (char c : description) d += c == ':' ? std::string("\\:") : std::string(1, c);
  return ShellQuoted(name + ":" + d);
}

static std::string ZshCompletion(const CLI::App& app) {
  std::string commands, cases;
  for (const auto& c : CompletionCommands(app)) {
    if (!c.name.empty()) commands += "    " + ZshDescribed(c.name, c.description) + "\n";
    cases += "    " + (c.name.empty() ? std::string("''") : c.name) + ")\n      flags=(" +
             Joined(c.flags) + ")\n      valued=(" + Joined(c.valued_flags) + ")\n      choices=(" +
             Joined(c.words) + ")\n      refs=" + std::to_string(c.image_refs) + " ;;\n";
  }
  return R"(#compdef hoist
# zsh completion for hoist, written by `hoist completion zsh`.
# Completes commands, flags, and image references from the store.
_hoist_refs() {
  local -a store
  local i=${words[(i)--store]}
  (( i < CURRENT - 1 )) && store=(--store "${words[i+1]}")
  command "${words[1]}" "${store[@]}" images --format /reference 2>/dev/null
}

_hoist() {
  local cmd="" i
  for (( i = 2; i < CURRENT; i++ )); do
    case ${words[i]} in
      --store) (( i++ )) ;;
      -*) ;;
      *) cmd=${words[i]}; break ;;
    esac
  done
  local -a flags valued choices cmds
  local refs=0 n=0
  case $cmd in
)" + cases +
         R"(    *) return 1 ;;
  esac
  # Positional arguments before the current word.
  for (( i++; i < CURRENT; i++ )); do
    if (( ${valued[(Ie)${words[i]}]} )); then (( i++ )); elif [[ ${words[i]} != -* ]]; then (( n++ )); fi
  done
  if (( ${valued[(Ie)${words[CURRENT-1]}]} )); then
    _files
  elif [[ $PREFIX == -* ]]; then
    compadd -- "${flags[@]}"
  elif [[ -z $cmd ]]; then
    cmds=(
)" + commands +
         R"(    )
    _describe command cmds
  elif (( ${#choices} )); then
    compadd -- "${choices[@]}"
  elif (( n < refs )); then
    local -a images
    images=("${(@f)$(_hoist_refs)}")
    compadd -- "${images[@]}"
  else
    _files
  fi
}

if [[ $funcstack[1] == _hoist ]]; then
  _hoist "$@"
else
  compdef _hoist hoist
fi
)";
}

// fish: single-quoted strings escape only ' and \.
static std::string FishQuoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

static std::string FishCompletion(const CLI::App& app) {
  std::string out = R"(# fish completion for hoist, written by `hoist completion fish`.
# Completes commands, flags, and image references from the store.
function __hoist_refs
    set -l args (commandline -opc)
    set -l store
    set -l i (contains -i -- --store $args)
    if test -n "$i"; and test $i -lt (count $args)
        set store --store $args[(math $i + 1)]
    end
    command $args[1] $store images --format /reference 2>/dev/null
end
complete -c hoist -f
)";
  std::string names;
  for (const auto& c : CompletionCommands(app)) {
    if (!c.name.empty()) names += (names.empty() ? "" : " ") + c.name;
  }
  for (const auto& c : CompletionCommands(app)) {
    std::string cond =
        c.name.empty() ? "__fish_use_subcommand" : "'__fish_seen_subcommand_from " + c.name + "'";
    if (!c.name.empty()) {
      out += "complete -c hoist -n __fish_use_subcommand -a " + c.name + " -d " +
             FishQuoted(c.description) + "\n";
    }
    for (const auto& f : c.flags) {
      bool valued =
          std::find(c.valued_flags.begin(), c.valued_flags.end(), f) != c.valued_flags.end();
      out += "complete -c hoist -n " + cond +
             (f.rfind("--", 0) == 0 ? " -l " + f.substr(2) : " -s " + f.substr(1)) +
             (valued ? " -r -F" : "") + "\n";
    }
    if (c.name.empty()) continue;
    if (!c.words.empty()) {
      out += "complete -c hoist -n " + cond + " -a " + FishQuoted(Joined(c.words)) + "\n";
    } else if (c.image_refs > 0) {
      out += "complete -c hoist -n " + cond + " -a '(__hoist_refs)'\n";
      // A later argument (unpack DEST, mount TARGET) is a path.
      if (c.image_refs != kAllRefs &&
          static_cast<int>(Positionals(*app.get_subcommand(c.name)).size()) > c.image_refs) {
        out += "complete -c hoist -n " + cond + " -F\n";
      }
    } else if (!Positionals(*app.get_subcommand(c.name)).empty()) {
      out += "complete -c hoist -n " + cond + " -F\n";
    }
  }
  return out;
}

std::string CompletionScript(const CLI::App& app, const std::string& shell) {
  if (shell == "zsh") return ZshCompletion(app);
  if (shell == "fish") return FishCompletion(app);
  return BashCompletion(app);
}

}  // namespace hoist::cli

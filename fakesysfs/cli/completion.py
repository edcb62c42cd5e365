"""``fakesysfs completion bash|zsh``: a shell completion script made from the command's own
parser (fakesysfs/cli/introspect.py), so it completes exactly the subcommands, options and
choices the parser accepts.

The script is tables (per command: its options, which take a value and of what kind, its
positional arguments, its subcommands) and one walker, written in the shell syntax bash and
zsh share, that follows the words before the cursor through them as argparse would: options
with their values, ``--``, subcommands, repeating arguments, ``run``'s COMMAND after which
nothing is ours. Each shell then offers the words, files, directories or commands it found.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .introspect import Command, command_tree

__all__ = ["add_parser", "completion_script"]

SHELLS = ("bash", "zsh")

_WALKER = r"""
# The words after the command name up to the cursor -> where completion stands: command
# _fakesysfs_node (-1: an unknown subcommand), its positional argument _fakesysfs_pos, or an
# option _fakesysfs_flag awaiting its value; _fakesysfs_rest after '--' or a COMMAND (options
# are no longer ours); _fakesysfs_seen words given to a repeating argument.
_fakesysfs_walk() {
    local word key kind child
    _fakesysfs_node=0 _fakesysfs_pos=0 _fakesysfs_flag= _fakesysfs_rest=0 _fakesysfs_seen=0
    while (( $# )); do
        word=$1
        shift
        if (( ! _fakesysfs_rest )) && [[ $word == -- ]]; then
            _fakesysfs_rest=1
        elif (( ! _fakesysfs_rest )) && [[ $word == -?* ]]; then
            key="$_fakesysfs_node $word"
            if [[ $word != *=* && -n ${_fakesysfs_optkind[$key]} ]]; then
                if (( ! $# )); then _fakesysfs_flag=$word; return; fi
                if [[ $1 == = ]]; then  # --flag=value, split at '=' by bash
                    shift
                    if (( ! $# )); then _fakesysfs_flag=$word; return; fi
                fi
                shift
            fi
        else
            key="$_fakesysfs_node $_fakesysfs_pos"
            kind=${_fakesysfs_argkind[$key]}
            if [[ $kind == subcommand ]]; then
                key="$_fakesysfs_node $word"
                child=${_fakesysfs_child[$key]}
                if [[ -z $child ]]; then _fakesysfs_node=-1; return; fi
                _fakesysfs_node=$child _fakesysfs_pos=0 _fakesysfs_seen=0
            elif [[ -n ${_fakesysfs_argrepeats[$key]} ]]; then
                _fakesysfs_seen=$(( _fakesysfs_seen + 1 ))
                if [[ $kind == command ]]; then _fakesysfs_rest=1; fi
            elif [[ -n $kind ]]; then
                _fakesysfs_pos=$(( _fakesysfs_pos + 1 ))
            fi
        fi
    done
}

# CUR and the words before it -> _fakesysfs_kind: words (_fakesysfs_words), file, dir,
# command or any (nothing to offer).
_fakesysfs_candidates() {
    local cur=$1 key kind
    shift
    _fakesysfs_walk "$@"
    _fakesysfs_kind=any _fakesysfs_words=
    if (( _fakesysfs_node < 0 )); then return; fi
    if [[ -n $_fakesysfs_flag ]]; then
        key="$_fakesysfs_node $_fakesysfs_flag"
        kind=${_fakesysfs_optkind[$key]}
        _fakesysfs_words=${_fakesysfs_optchoices[$key]}
    else
        key="$_fakesysfs_node $_fakesysfs_pos"
        kind=${_fakesysfs_argkind[$key]}
        _fakesysfs_words=${_fakesysfs_argchoices[$key]}
        if (( ! _fakesysfs_rest )) && [[ $cur == -* || -z $kind ]]; then
            _fakesysfs_kind=words
            _fakesysfs_words=${_fakesysfs_options[$_fakesysfs_node]}
            return
        fi
        if [[ $kind == command ]] && (( _fakesysfs_seen )); then kind=file; fi
    fi
    case $kind in
        choice|subcommand) _fakesysfs_kind=words ;;
        *) _fakesysfs_kind=$kind ;;
    esac
}
"""

_BASH_MAIN = r"""
_fakesysfs() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [[ $cur == = ]]; then cur=; fi
    _fakesysfs_candidates "$cur" "${COMP_WORDS[@]:1:COMP_CWORD-1}"
    COMPREPLY=()
    case $_fakesysfs_kind in
        words) mapfile -t COMPREPLY < <(compgen -W "$_fakesysfs_words" -- "$cur") ;;
        file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
        command) mapfile -t COMPREPLY < <(compgen -c -- "$cur") ;;
    esac
}
complete -F _fakesysfs fakesysfs
"""

_ZSH_MAIN = r"""
_fakesysfs() {
    local w key
    local -a described
    _fakesysfs_candidates "${words[CURRENT]}" "${(@)words[2,CURRENT-1]}"
    case $_fakesysfs_kind in
        words)
            for w in ${=_fakesysfs_words}; do
                key="$_fakesysfs_node $w"
                if [[ -n ${_fakesysfs_desc[$key]} ]]; then
                    described+=("${w//:/\\:}:${_fakesysfs_desc[$key]}")
                else
                    described+=("${w//:/\\:}")
                fi
            done
            _describe -t values fakesysfs described ;;
        file) _files ;;
        dir) _files -/ ;;
        command) _command_names -e ;;
        *) return 1 ;;
    esac
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _fakesysfs "$@"   # autoloaded from $fpath
else
    compdef _fakesysfs fakesysfs
fi
"""


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser(
        "completion", help="print a bash or zsh completion script for fakesysfs",
        description="Print a completion script for SHELL, made from fakesysfs's own parser. bash: "
                    "'source <(fakesysfs completion bash)' in ~/.bashrc, or save it as "
                    "/etc/bash_completion.d/fakesysfs; zsh: save it as _fakesysfs in a directory of $fpath "
                    "(before compinit), or 'source <(fakesysfs completion zsh)' after compinit.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(args.root_parser, args.shell))
    return 0


def _tables(root: Command) -> dict[str, dict[str, str]]:
    """The walker's tables: keys ``"NODE FLAG"``, ``"NODE INDEX"``, ``"NODE NAME"`` or
    ``"NODE"``; NODE is the command's index in ``root.walk()``."""
    commands = root.walk()
    index = {id(c): i for i, c in enumerate(commands)}
    t: dict[str, dict[str, str]] = {name: {} for name in (
        "options", "optkind", "optchoices", "argkind", "argchoices", "argrepeats", "child", "desc")}
    for i, command in enumerate(commands):
        t["options"][str(i)] = " ".join(flag for option in command.options for flag in option.flags)
        for option in command.options:
            for flag in option.flags:
                if option.help:
                    t["desc"][f"{i} {flag}"] = option.help
                if option.takes_value:
                    t["optkind"][f"{i} {flag}"] = option.kind
                    if option.choices:
                        t["optchoices"][f"{i} {flag}"] = " ".join(option.choices)
        for k, argument in enumerate(command.arguments):
            t["argkind"][f"{i} {k}"] = argument.kind
            if argument.choices:
                t["argchoices"][f"{i} {k}"] = " ".join(argument.choices)
            if argument.repeats:
                t["argrepeats"][f"{i} {k}"] = "1"
        for sub in command.subcommands:
            t["child"][f"{i} {sub.path[-1]}"] = str(index[id(sub)])
            if sub.help:
                t["desc"][f"{i} {sub.path[-1]}"] = sub.help
    return t


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (bash or zsh) of ``parser``'s command."""
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}: {' or '.join(SHELLS)}")
    root = command_tree(parser)
    name = root.path[0]
    lines = [("#compdef " + name) if shell == "zsh" else f"# bash completion for {name}",
             f"# Generated by '{name} completion {shell}' from {name}'s argument parser; do not edit."]
    for table, entries in _tables(root).items():
        var = f"_fakesysfs_{table}"
        if shell == "bash":
            body = " ".join(f"[{shlex.quote(k)}]={shlex.quote(v)}" for k, v in entries.items())
            lines.append(f"declare -gA {var}=({body})")
        else:
            body = " ".join(f"{shlex.quote(k)} {shlex.quote(v)}" for k, v in entries.items())
            lines.append(f"typeset -gA {var}")
            lines.append(f"{var}=({body})")
    lines.append(_WALKER)
    lines.append(_BASH_MAIN if shell == "bash" else _ZSH_MAIN)
    return "\n".join(lines).rstrip("\n") + "\n"

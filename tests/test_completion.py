"""Shell completion and the man page are made from the one parser (``fakesysfs completion
bash|zsh``, ``fakesysfs manpage``): bash, with the script sourced and COMP_WORDS set, offers
what the parser accepts at each point; zsh does the same through its completion functions;
the man page renders and names every command and option."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ENV, FAKESYSFS

from fakesysfs import cli
from fakesysfs.cli.completion import completion_script
from fakesysfs.cli.introspect import Command, command_tree
from fakesysfs.cli.manpage import manpage

PARSER = cli.parser()
TREE = command_tree(PARSER)


def generated(*argv: str) -> str:
    done = subprocess.run([*FAKESYSFS, *argv], env=ENV, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "fakesysfs.bash"
    path.write_text(generated("completion", "bash"))
    return path


def bash_complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) with ``script`` sourced."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    program = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; ' \
              '_fakesysfs; printf "%s\\n" "${COMPREPLY[@]}"'
    done = subprocess.run(["bash", "--norc", "-c", program, "bash", str(script), *words], cwd=cwd,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return [word for word in done.stdout.split("\n") if word]


def flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` itself, read from argparse."""
    return {flag for action in parser._actions for flag in action.option_strings}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_line(command: Command) -> str:
    """Words that reach ``command``: each subcommand name, after a stand-in for each argument
    that precedes it (``fakesysfs ctl /mnt fault``)."""
    words = [TREE.path[0]]
    node = TREE
    for name in command.path[1:]:
        before = [a.kind for a in node.arguments].index("subcommand")  # arguments before the subcommand
        words += ["/mnt"] * before + [name]
        node = next(sub for sub in node.subcommands if sub.path[-1] == name)
    return " ".join(words)


def test_bash_completes_subcommands_choices_and_values(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "machine.toml").touch()
    (tmp_path / "mnt").mkdir()
    assert bash_complete(bash_script, "fakesysfs ") == list(subparsers(PARSER))
    assert bash_complete(bash_script, "fakesysfs m") == ["mount", "monitor", "manpage"]
    assert bash_complete(bash_script, "fakesysfs ctl /mnt fault ") == [
        "notifier", "memmap-fail-at-chunk", "probe-fail", "clear"]
    assert bash_complete(bash_script, "fakesysfs ctl /mnt w") == ["wait-event", "wait-store"]
    assert bash_complete(bash_script, "fakesysfs udev /mnt --programs ") == ["auto", "host", "skip"]
    assert bash_complete(bash_script, "fakesysfs completion ") == ["bash", "zsh"]
    # values: files for -c, directories for a MOUNTPOINT, programs for run's COMMAND, then its files
    assert sorted(bash_complete(bash_script, "fakesysfs mount -c ", tmp_path)) == ["machine.toml", "mnt"]
    assert bash_complete(bash_script, "fakesysfs -v mount -f ", tmp_path) == ["mnt"]
    assert "bash" in bash_complete(bash_script, "fakesysfs run --pin -- bas")
    assert bash_complete(bash_script, "fakesysfs run ls -", tmp_path) == []  # ls's options are not ours
    assert sorted(bash_complete(bash_script, "fakesysfs run ls m", tmp_path)) == ["machine.toml", "mnt"]
    # an option's value is not a positional: MOUNTPOINT still comes after --log-file PATH
    assert bash_complete(bash_script, "fakesysfs mount --log-file x ", tmp_path) == ["mnt"]
    assert bash_complete(bash_script, "fakesysfs bogus ") == []


def test_bash_offers_every_subcommand_and_option_of_every_command(bash_script: Path) -> None:
    """At each command of the parser's tree, ``-`` offers exactly its options and an empty
    word its subcommands, as argparse has them."""
    parsers = {" ".join(TREE.path): PARSER}
    for command in TREE.walk():
        parser = parsers[" ".join(command.path)]
        line = command_line(command)
        assert set(bash_complete(bash_script, f"{line} -")) == flags(parser), line
        subs = subparsers(parser)
        if subs:
            before = [a.kind for a in command.arguments].index("subcommand")
            assert bash_complete(bash_script, " ".join([line, *["/mnt"] * before, ""])) == list(subs), line
        for name, sub in subs.items():
            parsers[" ".join([*command.path, name])] = sub
    assert len(parsers) == len(TREE.walk()) > 20


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_offers_the_same_through_its_completion_functions(tmp_path: Path) -> None:
    script = tmp_path / "_fakesysfs"
    script.write_text(generated("completion", "zsh"))
    assert script.read_text().startswith("#compdef fakesysfs\n")
    assert subprocess.run(["zsh", "-n", str(script)], check=False).returncode == 0
    # compsys stand-ins that print what they were asked to offer
    program = ('compdef() { print -r -- "compdef $*" }; '
               '_describe() { print -rl -- "${(@P)4}" }; _files() { print -r -- "files $*" }; '
               'source "$1"; shift; words=("$@"); CURRENT=$#; _fakesysfs')

    def offered(line: str) -> list[str]:
        words = line.split() + ([""] if line.endswith(" ") else [])
        done = subprocess.run(["zsh", "-f", "-c", program, "zsh", str(script), *words], capture_output=True,
                              text=True, timeout=30, check=False)
        assert not done.stderr, done.stderr
        return done.stdout.splitlines()

    assert offered("fakesysfs ")[0] == "compdef _fakesysfs fakesysfs"
    assert offered("fakesysfs ")[1:] == [f"{sub.path[-1]}:{sub.help}" for sub in TREE.subcommands]
    assert "remove:a CXL region or hmem range goes away" in offered("fakesysfs ctl /mnt ")
    assert offered("fakesysfs udev /mnt --programs ")[1:] == ["auto", "host", "skip"]
    assert offered("fakesysfs mount ")[1:] == ["files -/"]
    assert offered("fakesysfs mount --state ")[1:] == ["files "]
    options = offered("fakesysfs umount -")[1:]
    assert "--lazy:detach now even if busy" in options and len(options) == 4


def rendered(text: str) -> str:
    """The man page as a reader sees it (groff's overstrike bold and underline removed)."""
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww"], input=text, capture_output=True, text=True,
                          timeout=60, check=False, env={**ENV, "MANWIDTH": "200"})
    assert done.returncode == 0 and not done.stderr, done.stderr  # -ww: every warning
    return re.sub(r".\x08", "", done.stdout).replace("\u2010", "-").replace("\u2212", "-")


def test_the_man_page_has_the_sections_every_command_and_option() -> None:
    text = generated("manpage")
    assert text == manpage(PARSER)
    assert re.search(r"^\.TH FAKESYSFS 1 ", text, re.MULTILINE)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "FILES", "SEE ALSO"):
        assert re.search(rf"^\.SH {section}$", text, re.MULTILINE), section
    for command in TREE.walk()[1:]:
        assert f'.SS "{" ".join(command.path)}"'.replace("-", "\\-") in text, command.path
    page = " ".join(rendered(text).split())  # words, whatever the line breaks
    for command in TREE.walk():
        assert " ".join(command.path) in page
        for option in command.options:
            for flag in option.flags:
                assert flag in page, (command.path, flag)
    assert "fakesysfs - serve a fake Linux /sys" in page
    assert "fakesysfs ctl MNT fault notifier online|offline ERRNO" in page  # ctl's examples kept as lines


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_shows_the_page(tmp_path: Path) -> None:
    page = tmp_path / "fakesysfs.1"
    page.write_text(manpage(PARSER))
    done = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60, check=False,
                          env={**ENV, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"})
    assert done.returncode == 0, done.stderr
    assert "fakesysfs ctl wait-store" in re.sub(r".\x08", "", done.stdout)


def test_completion_refuses_an_unknown_shell() -> None:
    with pytest.raises(ValueError, match="bash or zsh"):
        completion_script(PARSER, "fish")
    done = subprocess.run([*FAKESYSFS, "completion", "fish"], env=ENV, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "invalid choice: 'fish'" in done.stderr

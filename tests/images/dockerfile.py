"""Just enough of a Dockerfile parser for the checks in this folder: instructions with their line
continuations joined and comments dropped, grouped into stages at each FROM."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"operator": ROOT / "Dockerfile.operator", "trainer": ROOT / "Dockerfile.trainer"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV ...
    text: str  # the rest, continuations joined by a space


@dataclass
class Stage:
    image: str  # FROM's image reference
    name: str | None  # FROM ... AS name
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.text for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (the `ENV key value` form is not used in this repository's files)."""
        out: dict[str, str] = {}
        for text in self.all("ENV"):
            for word in shlex.split(text):
                key, sep, value = word.partition("=")
                assert sep, f"ENV {text!r}: write key=value"
                out[key] = value
        return out


def instructions(path: Path) -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip()))
        pending = ""
    return out


def stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs declared before the first FROM, the stages in order)."""
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            words = [w for w in ins.text.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif not found:
            assert ins.keyword == "ARG", f"{path.name}: {ins.keyword} before the first FROM"
            key, _, value = ins.text.partition("=")
            global_args[key] = value
        else:
            found[-1].instructions.append(ins)
    return global_args, found


def project_installs(stage: Stage) -> list[tuple[str, set[str]]]:
    """The pip installs of this project in a stage: (its target, e.g. ".", and the extras it names)."""
    found = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if "pip" not in " ".join(words[:3]) or "install" not in words:
                continue
            for word in words[words.index("install") + 1 :]:
                match = re.fullmatch(r"(\.|/src|/src/?)(\[([a-z0-9,_-]+)\])?", word)
                if match:
                    found.append((match.group(1), set(filter(None, (match.group(3) or "").split(",")))))
    return found

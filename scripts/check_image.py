"""Checks the container image's recipe without a Docker engine.

1. The Dockerfile's `cargo build` command, run here as written (debug profile instead of
   release, so it reuses the test build), must produce every binary the image copies.
2. Every command the compose file and the Kubernetes manifests run must name a binary the
   image ships, and every `--flag` in it must appear in that binary's `--help`.

The Dockerfile may be multi-stage (with cargo-chef, say): only its one `cargo build --release` RUN
step counts as the build; `cargo install` and `cargo chef cook` steps are not it.

Usage: check_image.py [DOCKERFILE]  (after `cargo build --workspace --bins`; default: the
repository's Dockerfile)
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def dockerfile_build(path: pathlib.Path | None = None) -> tuple[list[str], list[str]]:
    """The cargo build arguments and the binaries copied out of target/release."""
    path = path or ROOT / "Dockerfile"
    try:
        return parse_dockerfile(path.read_text())
    except ValueError as error:
        sys.exit(f"{path}: {error}")


def run_steps(text: str):
    """Each `&&`/`;`-separated command of each RUN instruction (shell form), as words.
    Continuation lines are joined and comment lines dropped, as Docker does."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].upper() != "RUN" or len(words) < 2:
            continue
        body = words[1]
        # RUN options (--mount=..., --network=..., --security=...) come before the command.
        while body.startswith("--"):
            body = body.split(None, 1)[1] if " " in body else ""
        for step in body.replace(";", "&&").split("&&"):
            yield shlex.split(step)


def parse_dockerfile(text: str) -> tuple[list[str], list[str]]:
    """The one `cargo build --release` command's arguments and the binaries it copies.
    Other cargo commands (`cargo install cargo-chef`, `cargo chef prepare|cook`) are not
    the build: cook compiles dependencies only, and its flags prove nothing about which
    binaries the image gets."""
    builds, shipped = [], []
    for words in run_steps(text):
        if words[:2] == ["cargo", "build"] and "--release" in words:
            builds.append(words[2:])
        if words[:1] == ["cp"]:
            shipped += [pathlib.Path(w).name for w in words if w.startswith("target/release/")]
    if not builds:
        raise ValueError("no `RUN cargo build --release ...` step found")
    if len(builds) > 1:
        raise ValueError(f"{len(builds)} `cargo build --release` steps; expected one")
    if not shipped:
        raise ValueError("no binaries copied from target/release")
    return builds[0], shipped


def built_binaries(build_args: list[str]) -> set[str]:
    """Binaries the build command produces (run in the debug profile)."""
    args = [a for a in build_args if a != "--release"]
    out = subprocess.run(
        ["cargo", "build", *args, "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    names = set()
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            names.add(pathlib.Path(msg["executable"]).name)
    return names


def compose_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("chat-backend") and "command" in service:
            yield f"docker-compose.yml: {name}", service["command"]


def kubernetes_commands():
    for path in sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                if container.get("image", "").startswith("chat-backend"):
                    command = container.get("command", []) + container.get("args", [])
                    if command:
                        yield f"{path.relative_to(ROOT)}: {container['name']}", command


def help_text(binary: str, words: list[str]) -> str:
    """`--help` of the binary, or of its subcommand when the command names one."""
    path = ROOT / "target" / "debug" / binary
    sub = [w for w in words[1:2] if not w.startswith("-")]
    return subprocess.run([str(path), *sub, "--help"], check=True, capture_output=True, text=True).stdout


def main(argv: list[str]) -> int:
    errors = 0
    build_args, shipped = dockerfile_build(pathlib.Path(argv[0]) if argv else None)
    built = built_binaries(build_args)
    for binary in shipped:
        if binary not in built:
            print(f"Dockerfile: `cargo build {' '.join(build_args)}` does not build `{binary}`, which the image copies")
            errors += 1
    print(f"Dockerfile: the image ships {len(shipped)} binaries: {', '.join(shipped)}")
    checked = 0
    for where, command in list(compose_commands()) + list(kubernetes_commands()):
        binary = command[0]
        if binary not in shipped:
            print(f"{where}: runs `{binary}`, which the image does not ship")
            errors += 1
            continue
        known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", help_text(binary, command)))
        for word in command[1:]:
            flag = word.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                print(f"{where}: `{binary}` has no flag `{flag}`")
                errors += 1
        checked += 1
    print(f"{checked} deployment commands checked against the binaries' --help")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

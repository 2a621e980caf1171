"""Checks the container image's recipe without a Docker engine.

1. The Dockerfile's `cargo build` command, run here as written (debug profile instead of
   release, so it reuses the test build), must produce every binary the image copies.
2. Every command the compose file and the Kubernetes manifests run must name a binary the
   image ships, and every `--flag` in it must appear in that binary's `--help`.

Usage: check_image.py  (from the repository root, after `cargo build --workspace --bins`)
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def dockerfile_build() -> tuple[list[str], list[str]]:
    """The cargo build arguments and the binaries copied out of target/release."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    build_args, shipped = None, []
    for line in text.splitlines():
        if not line.strip().startswith("RUN"):
            continue
        for step in line.strip()[3:].split("&&"):
            words = shlex.split(step)
            if words[:2] == ["cargo", "build"] and "--release" in words:
                build_args = words[2:]
            if words[:1] == ["cp"]:
                shipped += [pathlib.Path(w).name for w in words if w.startswith("target/release/")]
    if build_args is None:
        sys.exit("Dockerfile: no `RUN cargo build --release ...` step found")
    if not shipped:
        sys.exit("Dockerfile: no binaries copied from target/release")
    return build_args, shipped


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


def main() -> int:
    errors = 0
    build_args, shipped = dockerfile_build()
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
    sys.exit(main())

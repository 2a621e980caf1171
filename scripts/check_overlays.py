"""Checks kustomize overlays without kustomize: every overlay's resources exist, and every
patch names a kind and name that the base defines. Usage: check_overlays.py DIR"""
import pathlib
import sys

import yaml


def resources(base: pathlib.Path):
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    found = set()
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((base / name).read_text()):
            if doc:
                found.add((doc["kind"], doc["metadata"]["name"]))
    return found


def main(root: str) -> int:
    root_path = pathlib.Path(root)
    defined = resources(root_path / "base")
    errors = 0
    for overlay in sorted((root_path / "overlays").iterdir()):
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        for resource in kustomization.get("resources", []):
            if not (overlay / resource / "kustomization.yaml").exists():
                print(f"{overlay.name}: resource {resource} has no kustomization.yaml")
                errors += 1
        for patch in kustomization.get("patches", []):
            targets = []
            if "target" in patch:
                targets.append((patch["target"]["kind"], patch["target"]["name"]))
            if "path" in patch:
                for doc in yaml.safe_load_all((overlay / patch["path"]).read_text()):
                    targets.append((doc["kind"], doc["metadata"]["name"]))
            for target in targets:
                if target not in defined:
                    print(f"{overlay.name}: patch targets {target}, which the base does not define")
                    errors += 1
        print(f"{overlay.name}: {len(kustomization.get('patches', []))} patches checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

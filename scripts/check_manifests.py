"""Renders the kustomize overlays and checks what the rendered manifests promise.

    check_manifests.py render OVERLAY_DIR       # prints the rendered YAML
    check_manifests.py check FILE.yaml...       # checks rendered overlays, one file each

`render` uses `kubectl kustomize` when kubectl is installed. Without it, it falls back to a
small renderer here that knows only the kustomize features this repository's overlays use
(resources, namespace, images, patches: strategic-merge files and JSON 6902 with a target,
configMapGenerator/secretGenerator literals); anything else is an error, never skipped.

`check` asserts, on every rendered overlay:
- the namespace enforces the `restricted` Pod Security Standard, and every pod template
  meets it: pod securityContext runAsNonRoot, runAsUser/runAsGroup/fsGroup 10001,
  seccompProfile RuntimeDefault; every container and initContainer allowPrivilegeEscalation
  false, readOnlyRootFilesystem true, capabilities drop ALL, not privileged;
- every workload that serves clients (selected by a Service, or running a binary that
  drains on SIGTERM) has a preStop sleep, and terminationGracePeriodSeconds is at least that
  sleep plus the drain timeout (CHAT_DRAIN_TIMEOUT from env, args or ConfigMap; default 10 s);
- NetworkPolicies: a default deny of ingress, and a policy that selects each workload's pods;
  the chat-service pods admit only gateways (and the metrics scraper);
- no Secret or ConfigMap of a prod overlay carries a placeholder secret (change-me, …), and
  no secret value is written literally into a container's env.
Only PyYAML and the standard library.
"""
import copy
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

UID = 10001
# Binaries that drain on SIGTERM (tell clients to reconnect, wait CHAT_DRAIN_TIMEOUT).
DRAINING = {"chatd", "chat-gateway"}
DEFAULT_DRAIN_SECONDS = 10
PLACEHOLDER = re.compile(
    r"change[-_ ]?me|changeme|placeholder|replace[-_ ]?me|not[-_ ]for[-_ ]production|^secret$|^password$|^todo$|^xxx+$",
    re.I,
)
SECRET_ENV = re.compile(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|PRIVATE_KEY", re.I)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


# ---------------------------------------------------------------------------------------
# Rendering


def render(overlay: str) -> str:
    if shutil.which("kubectl"):
        return subprocess.run(
            ["kubectl", "kustomize", overlay], check=True, capture_output=True, text=True
        ).stdout
    print(f"kubectl not found: rendering {overlay} with the built-in fallback renderer", file=sys.stderr)
    return yaml.safe_dump_all(fallback_render(pathlib.Path(overlay)), sort_keys=True)


KNOWN_FIELDS = {
    "apiVersion", "kind", "resources", "namespace", "images", "patches",
    "configMapGenerator", "secretGenerator",
}


def fallback_render(directory: pathlib.Path) -> list:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        sys.exit(f"{directory}: the fallback renderer does not support {sorted(unknown)}; install kubectl")
    docs = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += fallback_render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for gen in kustomization.get(generator, []):
            unknown = set(gen) - {"name", "behavior", "literals", "options"}
            if unknown:
                sys.exit(f"{directory}: {generator} field(s) {sorted(unknown)} unsupported by the fallback")
            data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
            if kind == "Secret":
                import base64
                data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            existing = find(docs, kind, gen["name"])
            if gen.get("behavior") == "merge" and existing is not None:
                existing.setdefault("data", {}).update(data)
            elif gen.get("behavior") == "replace" and existing is not None:
                existing["data"] = data
            else:
                doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}, "data": data}
                if kind == "Secret":
                    doc["type"] = "Opaque"
                docs.append(doc)
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            for p in yaml.safe_load_all((directory / patch["path"]).read_text()):
                target = find(docs, p["kind"], p["metadata"]["name"])
                if target is None:
                    sys.exit(f"{directory}: patch {patch['path']} targets a missing {p['kind']}/{p['metadata']['name']}")
                merge(target, p)
        else:
            target = find(docs, patch["target"]["kind"], patch["target"]["name"])
            if target is None:
                sys.exit(f"{directory}: patch targets a missing {patch['target']}")
            for op in yaml.safe_load(patch["patch"]):
                json_patch(target, op)
    for image in kustomization.get("images", []):
        for doc in docs:
            for c in containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def find(docs, kind, name):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def merge(base, patch):
    """Strategic merge, as far as these overlays need it: maps merge, lists of named maps
    merge by name, other lists are replaced."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        elif (
            isinstance(value, list) and isinstance(base.get(key), list)
            and all(isinstance(v, dict) and "name" in v for v in value + base[key])
        ):
            for item in value:
                match = next((b for b in base[key] if b["name"] == item["name"]), None)
                if match is None:
                    base[key].append(copy.deepcopy(item))
                else:
                    merge(match, item)
        else:
            base[key] = copy.deepcopy(value)


def json_patch(doc, op):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op["op"] == "add":
            parent.insert(index, op["value"])
        elif op["op"] == "replace":
            parent[index] = op["value"]
        elif op["op"] == "remove":
            del parent[index]
        else:
            sys.exit(f"JSON patch op {op['op']} unsupported by the fallback renderer")
    else:
        if op["op"] in ("add", "replace"):
            parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[last]
        else:
            sys.exit(f"JSON patch op {op['op']} unsupported by the fallback renderer")


# ---------------------------------------------------------------------------------------
# Checks


def pod_spec(doc):
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if doc.get("kind") in WORKLOADS:
        return doc["spec"]["template"]["spec"]
    if doc.get("kind") == "Pod":
        return doc["spec"]
    return None


def containers(doc):
    spec = pod_spec(doc)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


def seconds(text) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * units[match.group(2)]


def env_of(container, docs):
    """The container's environment as the pod would see it (ConfigMap envFrom, then env)."""
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            cm = find(docs, "ConfigMap", ref["name"])
            env.update((cm or {}).get("data", {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


def command_of(container):
    return container.get("command", []) + container.get("args", [])


def selects(selector: dict, labels: dict) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present = expr["key"] in labels
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and labels.get(expr["key"]) in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "DoesNotExist" and present:
            return False
    return True


def check_security(where, doc, errors):
    spec = pod_spec(doc)
    sc = spec.get("securityContext") or {}
    want = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID}
    for key, value in want.items():
        if sc.get(key) != value:
            errors.append(f"{where}: pod securityContext.{key} is {sc.get(key)!r}, want {value!r}")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        errors.append(f"{where}: pod securityContext.seccompProfile.type must be RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        errors.append(f"{where}: uses host namespaces")
    for c in containers(doc):
        csc = c.get("securityContext") or {}
        cwhere = f"{where} container {c['name']}"
        if csc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{cwhere}: securityContext.allowPrivilegeEscalation must be false")
        if csc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cwhere}: securityContext.readOnlyRootFilesystem must be true")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            errors.append(f"{cwhere}: securityContext.capabilities.drop must include ALL")
        if set((csc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            errors.append(f"{cwhere}: adds capabilities the restricted profile forbids")
        if csc.get("privileged"):
            errors.append(f"{cwhere}: privileged")
        if csc.get("runAsUser") == 0 or csc.get("runAsNonRoot") is False:
            errors.append(f"{cwhere}: runs as root")
        for var in c.get("env", []):
            if "value" in var and SECRET_ENV.search(var["name"]) and not var["name"].endswith("_FILE"):
                errors.append(f"{cwhere}: env {var['name']} has a literal value; take it from a Secret")


def check_shutdown(where, doc, docs, errors):
    spec = pod_spec(doc)
    labels = doc["spec"]["template"]["metadata"].get("labels", {})
    behind_service = any(
        d["kind"] == "Service" and selects({"matchLabels": d["spec"].get("selector") or {}}, labels)
        and d["spec"].get("selector")
        for d in docs
    )
    grace = spec.get("terminationGracePeriodSeconds", 30)
    for c in spec.get("containers", []):
        command = command_of(c)
        binary = command[0] if command else ""
        drains = binary in DRAINING
        if not (drains or behind_service):
            continue
        pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {})
        exec_cmd = (pre_stop.get("exec") or {}).get("command") or []
        if pre_stop.get("sleep"):
            delay = float(pre_stop["sleep"]["seconds"])
        elif len(exec_cmd) == 2 and exec_cmd[0] in ("sleep", "/bin/sleep", "/usr/bin/sleep"):
            delay = seconds(exec_cmd[1] if not exec_cmd[1].isdigit() else exec_cmd[1] + "s")
        else:
            errors.append(f"{where} container {c['name']}: serves clients but has no preStop sleep "
                          "(endpoints are removed asynchronously; without it new connections hit a draining pod)")
            continue
        drain = 0.0
        if drains:
            drain = float(DEFAULT_DRAIN_SECONDS)
            env = env_of(c, docs)
            if "CHAT_DRAIN_TIMEOUT" in env:
                drain = seconds(env["CHAT_DRAIN_TIMEOUT"])
            for i, word in enumerate(command):
                if word == "--drain-timeout" and i + 1 < len(command):
                    drain = seconds(command[i + 1])
                elif word.startswith("--drain-timeout="):
                    drain = seconds(word.split("=", 1)[1])
        if grace < delay + drain:
            errors.append(f"{where}: terminationGracePeriodSeconds {grace} < preStop {delay:g}s + drain {drain:g}s")


def check_network(name, docs, workloads, errors):
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    default_deny = [
        p for p in policies
        if p["spec"].get("podSelector") in ({}, None) and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
    ]
    if not default_deny:
        errors.append(f"{name}: no default-deny ingress NetworkPolicy (podSelector {{}}, policyTypes [Ingress], no rules)")
    for where, doc in workloads:
        labels = doc["spec"]["template"]["metadata"].get("labels", {})
        own = [p for p in policies if p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels)]
        if not own:
            errors.append(f"{where}: no NetworkPolicy selects its pods")
        if labels.get("app.kubernetes.io/name") == "chat-service":
            for p in own:
                for rule in p["spec"].get("ingress", []):
                    for peer in rule.get("from", [{}]) or [{}]:
                        pods = (peer.get("podSelector") or {}).get("matchLabels", {})
                        namespaces = peer.get("namespaceSelector")
                        if "ipBlock" in peer or not peer:
                            errors.append(f"{where}: NetworkPolicy {p['metadata']['name']} admits any address")
                        elif namespaces is None and pods.get("app.kubernetes.io/name") != "chat-gateway":
                            errors.append(f"{where}: NetworkPolicy {p['metadata']['name']} admits {pods or 'every pod'}, not only gateways")


def check_secrets(name, docs, errors):
    for doc in docs:
        if doc["kind"] not in ("Secret", "ConfigMap"):
            continue
        import base64
        values = dict(doc.get("stringData") or {})
        for key, value in (doc.get("data") or {}).items():
            if doc["kind"] == "Secret":
                try:
                    value = base64.b64decode(value).decode()
                except Exception:
                    continue
            values[key] = value
        for key, value in values.items():
            if PLACEHOLDER.search(str(value)):
                errors.append(f"{name}: {doc['kind']} {doc['metadata']['name']} key {key} holds a placeholder ({value!r}); "
                              "reference a Secret created outside the repository")
            elif doc["kind"] == "Secret":
                errors.append(f"{name}: Secret {doc['metadata']['name']} key {key} is kept in the repository; "
                              "prod takes secrets from the cluster")


def check_file(path: str) -> list:
    name = pathlib.Path(path).stem
    docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    errors = []
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    for ns in namespaces:
        labels = ns["metadata"].get("labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            errors.append(f"{name}: Namespace {ns['metadata']['name']} lacks pod-security.kubernetes.io/enforce: restricted")
    if not namespaces:
        errors.append(f"{name}: renders no Namespace (its Pod Security label would be missing)")
    workloads = []
    for doc in docs:
        if pod_spec(doc) is None:
            continue
        where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
        workloads.append((where, doc))
        check_security(where, doc, errors)
        if doc["kind"] in ("Deployment", "StatefulSet"):
            check_shutdown(where, doc, docs, errors)
    if not workloads:
        errors.append(f"{name}: renders no workload")
    check_network(name, docs, workloads, errors)
    if name.startswith("prod"):
        check_secrets(name, docs, errors)
    print(f"{name}: {len(workloads)} workloads, {len(docs)} objects checked")
    return errors


def main(argv) -> int:
    if len(argv) == 2 and argv[0] == "render":
        sys.stdout.write(render(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        errors = []
        for path in argv[1:]:
            errors += check_file(path)
        for error in errors:
            print(error)
        return 1 if errors else 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

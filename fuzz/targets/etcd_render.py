"""Coverage-guided fuzzing of fwenforcer-etcd-watch's rendering (atheris, libFuzzer for Python).

Each input is what `etcdctl get -w json` could hand the watcher: key-value pairs of arbitrary
bytes, base64 as etcdctl writes them. The property is the renderer's promise: whatever the keys
and values, either the render is refused (RenderError), or its text is one TOML document whose
shared part is the config key's, and whose [groups] holds exactly the addresses of the members
accepted (a catalog group name, a printable member name), each under its own group, so no key
can add a group, a setting or an address to another group.

  FUZZ: python3 fuzz/targets/etcd_render.py [libFuzzer flags] CORPUS_DIR...
"""

import base64
import importlib.machinery
import importlib.util
import os
import re
import sys
import tomllib

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
WATCHER = os.path.join(HERE, "..", "..", "deploy", "etcd", "fwenforcer-etcd-watch")

loader = importlib.machinery.SourceFileLoader("fwenforcer_etcd_watch", WATCHER)
spec = importlib.util.spec_from_loader(loader.name, loader)
watch = importlib.util.module_from_spec(spec)
loader.exec_module(watch)

PREFIX = "/fwenforcer/fuzz"
SHARED = b'[host]\nroles = "auto"\ncatalog = "cloudcenter"\n'


def pairs(data):
    """The input as (key, value) byte pairs: NUL-separated fields, alternating key and value. A
    key without the prefix gets it (most keys then reach the members code), unless it starts
    with '!'; the shared config is added unless the input gives one."""
    fields = data.split(b"\0")
    out = []
    for i in range(0, len(fields) - 1, 2):
        key, value = fields[i], fields[i + 1]
        if key.startswith(b"!"):
            key = key[1:]
        elif not key.startswith(b"/"):
            key = PREFIX.encode() + b"/members/" + key
        out.append((key, value))
    if not any(k == PREFIX.encode() + b"/config" for k, _ in out):
        out.append((PREFIX.encode() + b"/config", SHARED))
    return out


def expected_groups(kvs):
    """What the [groups] table must be: the addresses of accepted members, by group."""
    groups = {}
    for key, value in kvs.items():
        if not key.startswith(PREFIX + "/members/"):
            continue
        group, _, name = key[len(PREFIX + "/members/"):].partition("/")
        if not watch.GROUP_NAME.fullmatch(group) or not name.isprintable():
            continue
        for address in re.split(r"[\s,]+", value.strip()):
            if address:
                groups.setdefault(group, set()).add(address)
    return {g: sorted(a) for g, a in groups.items()}


def test_one(data):
    raw = [{"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()} for k, v in pairs(data)]
    kvs, skipped = watch.decode_kvs(raw)
    for message in skipped:
        assert "\n" not in message and "\r" not in message, message
    try:
        text, _, groups, skipped = watch.render(PREFIX, kvs)
    except watch.RenderError as e:
        assert "\n" not in str(e), str(e)
        return
    for message in skipped:
        assert message.isprintable(), message
    document = tomllib.loads(text)
    shared = tomllib.loads(kvs[PREFIX + "/config"])
    assert {k: v for k, v in document.items() if k != "groups"} == shared, "the render changed the shared config"
    want = expected_groups(kvs)
    assert document["groups"] == want, (document["groups"], want)
    assert groups == sorted(want)


if __name__ == "__main__":
    # Every loaded function: the watcher's (loaded from a file without .py, which
    # instrument_imports does not see) and tomllib's and re's, whose paths the input steers too.
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()

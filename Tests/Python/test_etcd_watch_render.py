"""The etcd watcher's rendering, as a function: hostile keys and values from etcd change no group;
and its state kept from the watch's events: always the prefix at one revision, as a read gives it.

Run by FleetEtcdUnitTests (`/usr/bin/python3 Tests/Python/test_etcd_watch_render.py`); standard
library only, like the watcher. The fuzz target fuzz/targets/etcd_render.py checks the same
property on generated input.
"""

import argparse
import base64
import contextlib
import importlib.machinery
import io
import json
import importlib.util
import os
import re
import stat
import sys
import tempfile
import time
import tomllib
import unittest
import unittest.mock

WATCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "etcd", "fwenforcer-etcd-watch")


def load_watcher():
    loader = importlib.machinery.SourceFileLoader("fwenforcer_etcd_watch", WATCHER)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


watch = load_watcher()

PREFIX = "/fwenforcer/test"
SHARED = '[host]\nroles = "auto"\ncatalog = "cloudcenter"\nversion = "4.10"\n\n[enforce]\ningress = "enforce"\negress = "enforce"\n'
BASE = {PREFIX + "/config": SHARED,
        PREFIX + "/members/CCO/cco-1": "198.18.0.20",
        PREFIX + "/members/AMQP/amqp-1": "198.18.0.30"}
BASE_GROUPS = {"CCO": ["198.18.0.20"], "AMQP": ["198.18.0.30"]}


def groups_of(text):
    return tomllib.loads(text)["groups"]


class HostileMembers(unittest.TestCase):
    def render(self, extra):
        text, _, groups, skipped = watch.render(PREFIX, dict(BASE, **extra))
        return text, groups, skipped

    def assertNoGroupChanged(self, extra):
        text, groups, skipped = self.render(extra)
        self.assertEqual(groups_of(text), BASE_GROUPS, text)
        self.assertEqual(text, watch.render(PREFIX, BASE)[0], "the rendered bytes differ")
        self.assertEqual(len(skipped), 1, skipped)
        return skipped[0]

    def test_a_member_name_cannot_close_the_array_and_add_a_group(self):
        # The key: "/" is refused in a name, so the CIDR's slash is written \u002F.
        key = PREFIX + '/members/AMQP/amqp-2\n]\nadmin_ssh = ["0.0.0.0\\u002F0",  #'
        message = self.assertNoGroupChanged({key: "198.18.0.31"})
        self.assertIn("member name holds a control or format character", message)
        self.assertNotIn("\n", message)

    def test_every_control_character_in_a_member_name_is_refused(self):
        for c in [chr(n) for n in range(0x20)] + ["\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\ufeff"]:
            with self.subTest(character=hex(ord(c))):
                self.assertNoGroupChanged({PREFIX + f"/members/AMQP/amqp{c}2": "198.18.0.31"})

    def test_a_group_that_is_not_a_catalog_name_is_skipped(self):
        for group in ['admin_ssh = ["0.0.0.0\\u002F0"]\nAMQP', "AMQP\n", "AMQP-LB", "1AMQP", "AMQP LB", 'A"', "Ä", "A" * 61]:
            with self.subTest(group=group):
                message = self.assertNoGroupChanged({PREFIX + f"/members/{group}/x": "198.18.0.31"})
                self.assertIn("not a catalog name", message)

    def test_printable_names_are_kept_in_the_comment_on_one_line(self):
        text, groups, skipped = self.render({PREFIX + "/members/AMQP/amqp 2, \"eu\" #1 ü": "198.18.0.31"})
        self.assertEqual(skipped, [])
        self.assertEqual(groups_of(text)["AMQP"], ["198.18.0.30", "198.18.0.31"])
        self.assertIn('    "198.18.0.31",  # amqp 2, "eu" #1 ü\n', text)

    def test_a_value_is_a_string_whatever_it_holds(self):
        # Not an address: fwenforcerd check refuses it later, but the TOML stays what it says.
        for value in ['198.18.0.31"]\nadmin_ssh = ["0.0.0.0/0', "a\\b", "\x1b[2J", "\U0001F600", "\x00"]:
            with self.subTest(value=value):
                text, _, _ = self.render({PREFIX + "/members/AMQP/amqp-2": value})
                self.assertEqual(set(groups_of(text)), {"CCO", "AMQP"})
                words = [w for w in re.split(r"[\s,]+", value) if w]
                self.assertEqual(groups_of(text)["AMQP"], sorted(["198.18.0.30"] + words))

    def test_toml_string_round_trips_every_character(self):
        every = "".join(chr(n) for n in range(0x3000) if not 0xD800 <= n < 0xE000) + "\U0001F600\U0010FFFF"
        self.assertEqual(tomllib.loads("k = " + watch.toml_string(every))["k"], every)


class UndecodableBytes(unittest.TestCase):
    def kv(self, key, value):
        return {"key": base64.b64encode(key).decode(), "value": base64.b64encode(value).decode()}

    def test_a_key_or_value_that_is_not_utf8_is_skipped_and_named(self):
        kvs, skipped = watch.decode_kvs([
            self.kv(b"/fwenforcer/test/members/AMQP/\xff\n", b"198.18.0.31"),
            self.kv(b"/fwenforcer/test/members/AMQP/amqp-3", b"198.18.0.32\xc3"),
            self.kv(b"/fwenforcer/test/members/AMQP/amqp-1", b"198.18.0.30"),
        ])
        self.assertEqual(kvs, {"/fwenforcer/test/members/AMQP/amqp-1": "198.18.0.30"})
        self.assertEqual(skipped, ["skipped key /fwenforcer/test/members/AMQP/\\xff\\n: not UTF-8",
                                   "skipped /fwenforcer/test/members/AMQP/amqp-3: its value is not UTF-8"])

    def test_a_key_without_a_value_is_an_empty_value(self):
        kvs, skipped = watch.decode_kvs([{"key": base64.b64encode(b"/k").decode()}])
        self.assertEqual((kvs, skipped), ({"/k": ""}, []))


def kv(key, value, revision):
    return {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode(),
            "mod_revision": revision}


def kvs_of(pairs, revision=1):
    return [kv(key, value, revision) for key, value in pairs.items()]


def put(key, value, revision):
    return {"kv": kv(key, value, revision)}


def delete(key, revision):
    # As etcdctl writes a delete: type 1, the key and its revision, no value.
    return {"type": 1, "kv": {"key": base64.b64encode(key.encode()).decode(), "mod_revision": revision}}


def response(*events, revision=None):
    return {"Header": {"revision": revision or max(e["kv"]["mod_revision"] for e in events)},
            "Events": list(events), "CompactRevision": 0, "Canceled": False, "Created": False}


class WatchEvents(unittest.TestCase):
    def state(self, pairs, revision=1):
        return {k["key"]: k for k in kvs_of(pairs, revision)}

    def test_puts_and_deletes_leave_what_a_read_at_that_revision_gives(self):
        state = self.state(BASE)
        amqp = PREFIX + "/members/AMQP/amqp-1"
        self.assertEqual(watch.apply_events(state, response(put(amqp, "198.18.0.31", 2)), 1), 2)
        # A transaction: both events of revision 3 in one response.
        self.assertEqual(watch.apply_events(state, response(put(PREFIX + "/members/AMQP/amqp-2", "198.18.0.40", 3),
                                                            delete(PREFIX + "/members/CCO/cco-1", 3)), 2), 3)
        kvs, skipped = watch.decode_kvs(state.values())
        self.assertEqual(skipped, [])
        self.assertEqual(kvs, {PREFIX + "/config": SHARED, amqp: "198.18.0.31",
                               PREFIX + "/members/AMQP/amqp-2": "198.18.0.40"})

    def test_events_the_state_already_holds_are_skipped(self):
        # A re-read at revision 5 while the watch still delivers revision 4: not applied again.
        state = self.state(BASE, revision=5)
        amqp = PREFIX + "/members/AMQP/amqp-1"
        self.assertIsNone(watch.apply_events(state, response(delete(amqp, 4)), 5))
        self.assertIn(kv(amqp, "", 0)["key"], state)
        self.assertEqual(watch.apply_events(state, response(delete(amqp, 4), delete(amqp, 6)), 5), 6)
        self.assertNotIn(kv(amqp, "", 0)["key"], state)

    def test_a_key_that_is_not_utf8_is_deleted_by_its_bytes(self):
        raw = {"key": base64.b64encode(b"/fwenforcer/test/members/AMQP/\xff").decode(), "mod_revision": 2}
        state = self.state(BASE)
        watch.apply_events(state, response({"kv": dict(raw, value=base64.b64encode(b"198.18.0.9").decode())}), 1)
        self.assertEqual(len(watch.decode_kvs(state.values())[1]), 1)
        watch.apply_events(state, response({"type": 1, "kv": dict(raw, mod_revision=3)}), 2)
        self.assertEqual(watch.decode_kvs(state.values()), (BASE, []))

    def test_a_compacted_or_canceled_watch_ends_it(self):
        for reply in ({"Events": [], "CompactRevision": 4, "Canceled": True}, {"Events": [], "Canceled": True}):
            with self.subTest(reply=reply), self.assertRaises(watch.WatchCanceled):
                watch.apply_events(self.state(BASE), reply, 1)

    def test_an_unknown_event_type_is_refused(self):
        with self.assertRaises(ValueError):
            watch.apply_events(self.state(BASE), response(dict(put(PREFIX + "/x", "y", 2), type=7)), 1)


FAKE_ETCDCTL = """#!/bin/sh
# etcdctl for the watch loop: `get` replies with the prefix; `watch` writes its responses split
# mid-line, then a burst, then a response it cannot parse, and exits.
case " $* " in
*" get "*) cat "$(dirname "$0")/get.json" ;;
*" watch "*) for f in "$(dirname "$0")"/watch-*.part; do cat "$f"; sleep 0.3; done ;;
esac
"""


class WatchLoop(unittest.TestCase):
    """Watcher.watch against a fake etcdctl and a fwenforcerd check that accepts anything."""

    def test_each_complete_response_is_rendered_once_and_an_unreadable_one_ends_the_watch(self):
        with tempfile.TemporaryDirectory() as d:
            etcdctl = os.path.join(d, "etcdctl")
            with open(etcdctl, "w") as f:
                f.write(FAKE_ETCDCTL)
            os.chmod(etcdctl, stat.S_IRWXU)
            with open(os.path.join(d, "get.json"), "w") as f:
                json.dump({"header": {"revision": 1}, "kvs": kvs_of(BASE)}, f)
            amqp = PREFIX + "/members/AMQP/amqp-1"
            first = json.dumps(response(put(amqp, "198.18.0.31", 2))) + "\n"
            burst = "".join(json.dumps(response(put(amqp, f"198.18.0.{40 + r}", r))) + "\n" for r in (3, 4, 5))
            parts = [first[:50], first[50:], burst, '{"Events": [{"kv": {}}]}\n' + json.dumps(response(put(amqp, "198.18.0.99", 6))) + "\n"]
            for n, part in enumerate(parts):
                with open(os.path.join(d, f"watch-{n}.part"), "w") as f:
                    f.write(part)
            output = os.path.join(d, "fwenforcer.conf")
            args = argparse.Namespace(prefix=PREFIX, etcdctl=etcdctl, endpoints="fake", timeout=1, fwenforcerd="/bin/true",
                                      host_address=["198.18.0.20"], output=output, on_install=None, trace=False,
                                      debounce=0.0, resync=600, once=False)
            w = watch.Watcher(args)
            installed = []
            w.after_install = lambda: installed.append(groups_of(open(output).read())["AMQP"])
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), unittest.mock.patch.object(watch.time, "sleep"):
                w.watch(w.sync())
            # The start, the split response once whole, the burst once (at its last revision);
            # nothing after the unreadable response, which ends the watch.
            self.assertEqual(installed, [["198.18.0.30"], ["198.18.0.31"], ["198.18.0.45"]], stderr.getvalue())
            self.assertIn("unreadable response", stderr.getvalue())
            self.assertIn("(etcd revision 5,", stderr.getvalue())


class Bursts(unittest.TestCase):
    """Watcher.watch fed by a pipe: changes that never pause for --debounce are still rendered."""

    def test_a_stream_without_a_pause_is_rendered_at_least_every_max_delay(self):
        with tempfile.TemporaryDirectory() as d:
            etcdctl = os.path.join(d, "etcdctl")
            # A response every 20 ms for 2.5 s (a put loop), each replacing amqp-1.
            amqp = PREFIX + "/members/AMQP/amqp-1"
            lines = [json.dumps(response(put(amqp, f"198.18.1.{r}", r))) for r in range(2, 127)]
            with open(os.path.join(d, "stream"), "w") as f:
                f.write("\n".join(lines) + "\n")
            with open(etcdctl, "w") as f:
                f.write(f"""#!/usr/bin/python3
import sys, time
if "get" in sys.argv:
    print({json.dumps(json.dumps({"header": {"revision": 1}, "kvs": kvs_of(BASE)}))})
else:
    for line in open({json.dumps(os.path.join(d, "stream"))}):
        sys.stdout.write(line); sys.stdout.flush(); time.sleep(0.02)
""")
            os.chmod(etcdctl, stat.S_IRWXU)
            output = os.path.join(d, "fwenforcer.conf")
            args = argparse.Namespace(prefix=PREFIX, etcdctl=etcdctl, endpoints="fake", timeout=1, fwenforcerd="/bin/true",
                                      host_address=["198.18.0.20"], output=output, on_install=None, trace=False,
                                      debounce=0.05, resync=600, once=False)
            w = watch.Watcher(args)
            installed = []
            w.after_install = lambda: installed.append((time.monotonic(), groups_of(open(output).read())["AMQP"]))
            with contextlib.redirect_stderr(io.StringIO()), unittest.mock.patch.object(watch.time, "sleep"):
                w.watch(w.sync())
            # The start, renders during the stream (each within MAX_DELAY of the one before,
            # with some slack for a loaded machine), and the last revision at the end.
            self.assertEqual(installed[-1][1], ["198.18.1.126"])
            self.assertGreaterEqual(len(installed), 3, installed)
            gaps = [b[0] - a[0] for a, b in zip(installed[1:], installed[2:])]
            self.assertTrue(all(g < watch.MAX_DELAY + 0.5 for g in gaps), gaps)


if __name__ == "__main__":
    unittest.main(verbosity=1)

"""The etcd watcher's rendering, as a function: hostile keys and values from etcd change no group.

Run by FleetEtcdUnitTests (`/usr/bin/python3 Tests/Python/test_etcd_watch_render.py`); standard
library only, like the watcher. The fuzz target fuzz/targets/etcd_render.py checks the same
property on generated input.
"""

import base64
import importlib.machinery
import importlib.util
import os
import re
import sys
import tomllib
import unittest

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


if __name__ == "__main__":
    unittest.main(verbosity=1)

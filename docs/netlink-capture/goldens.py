#!/usr/bin/env python3
"""Regenerates Tests/EnforcerTests/NetlinkGoldens.swift from what nft itself sends.

For each case, a one-rule table is written in nft syntax and checked with `nft -c -f` inside a
throwaway network namespace (`unshare --net`), with nlcap.so preloaded to record the batch nft
sends. The batch's messages (type and bytes after the netlink header) become the golden that
fwenforcer's encoder must reproduce for the equivalent `Rule`.

    gcc -shared -fPIC -O2 -o /tmp/nlcap.so docs/netlink-capture/nlcap.c -ldl
    sudo python3 docs/netlink-capture/goldens.py /tmp/nlcap.so > Tests/EnforcerTests/NetlinkGoldens.swift
"""
import os, struct, subprocess, sys, tempfile

NLCAP = sys.argv[1] if len(sys.argv) > 1 else "/tmp/nlcap.so"
S4 = ("set CCM_v4 { type ipv4_addr; flags interval; }", 'NamedSet(name: "CCM_v4", family: .ipv4, interval: true, elements: AddressSet(family: .ipv4))')
H4 = ("set CCM_v4 { type ipv4_addr; }", 'NamedSet(name: "CCM_v4", family: .ipv4, interval: false, elements: AddressSet(family: .ipv4))')
S6 = ("set CCM_v6 { type ipv6_addr; flags interval; }", 'NamedSet(name: "CCM_v6", family: .ipv6, interval: true, elements: AddressSet(family: .ipv6))')

# (nft statement, named set or None, hook, Swift Rule)
CASES = [
    ('iifname "lo" accept', None, "input", 'Rule(matches: [.interface(.input, "lo")], verdict: .accept)'),
    ('oifname "lo" accept', None, "output", 'Rule(matches: [.interface(.output, "lo")], verdict: .accept)'),
    ('ct state established,related accept', None, "input", 'Rule(matches: [.ctState([.established, .related])], verdict: .accept)'),
    ('ct state invalid drop', None, "input", 'Rule(matches: [.ctState([.invalid])], verdict: .drop)'),
    ('ct state related accept', None, "input", 'Rule(matches: [.ctState([.related])], verdict: .accept)'),
    ('ct direction reply accept', None, "input", 'Rule(matches: [.ctDirectionReply], verdict: .accept)'),
    ('meta nfproto ipv4 accept', None, "input", 'Rule(matches: [.family(.ipv4)], verdict: .accept)'),
    ('meta nfproto ipv6 accept', None, "input", 'Rule(matches: [.family(.ipv6)], verdict: .accept)'),
    ('meta l4proto tcp accept', None, "input", 'Rule(matches: [.transport(.tcp)], verdict: .accept)'),
    ('meta l4proto udp accept', None, "input", 'Rule(matches: [.transport(.udp)], verdict: .accept)'),
    ('ip saddr @CCM_v4 accept', S4, "input", 'Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4")], verdict: .accept)'),
    ('ip daddr @CCM_v4 accept', S4, "output", 'Rule(matches: [.addressInSet(.destination, .ipv4, set: "CCM_v4")], verdict: .accept)'),
    ('ip6 saddr @CCM_v6 accept', S6, "input", 'Rule(matches: [.addressInSet(.source, .ipv6, set: "CCM_v6")], verdict: .accept)'),
    ('ip6 daddr @CCM_v6 accept', S6, "output", 'Rule(matches: [.addressInSet(.destination, .ipv6, set: "CCM_v6")], verdict: .accept)'),
    ('tcp dport 8443 accept', None, "input", 'Rule(matches: [.ports(.destination, .tcp, [PortRange(8443)])], verdict: .accept)'),
    ('udp sport 53 accept', None, "input", 'Rule(matches: [.ports(.source, .udp, [PortRange(53)])], verdict: .accept)'),
    ('tcp dport { 80, 443 } accept', None, "input", 'Rule(matches: [.ports(.destination, .tcp, [PortRange(80), PortRange(443)])], verdict: .accept)'),
    ('tcp sport { 80, 443 } accept', None, "input", 'Rule(matches: [.ports(.source, .tcp, [PortRange(80), PortRange(443)])], verdict: .accept)'),
    ('tcp dport 1000-2000 accept', None, "input", 'Rule(matches: [.ports(.destination, .tcp, [PortRange(1000, 2000)])], verdict: .accept)'),
    ('udp dport { 22, 1000-2000 } accept', None, "input", 'Rule(matches: [.ports(.destination, .udp, [PortRange(22), PortRange(1000, 2000)])], verdict: .accept)'),
    ('tcp dport { 22, 60000-65535 } accept', None, "input", 'Rule(matches: [.ports(.destination, .tcp, [PortRange(22), PortRange(60000, 65535)])], verdict: .accept)'),
    ('udp sport 67 udp dport 68 accept', None, "input", 'Rule(matches: [.ports(.source, .udp, [PortRange(67)]), .ports(.destination, .udp, [PortRange(68)])], verdict: .accept)'),
    ('icmp type echo-request accept', None, "input", 'Rule(matches: [.icmpTypes(.ipv4, [.echoRequest])], verdict: .accept)'),
    ('icmp type { destination-unreachable, time-exceeded } accept', None, "input", 'Rule(matches: [.icmpTypes(.ipv4, [.destinationUnreachable, .timeExceeded])], verdict: .accept)'),
    ('icmpv6 type packet-too-big accept', None, "input", 'Rule(matches: [.icmpTypes(.ipv6, [.packetTooBig])], verdict: .accept)'),
    ('icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept', None, "input", 'Rule(matches: [.icmpTypes(.ipv6, [.neighborSolicit, .neighborAdvert])], verdict: .accept)'),
    ('icmpv6 type { packet-too-big, mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept comment "IPv6 neighbour discovery, multicast listeners, path MTU"', None, "input",
     'Rule(matches: [.icmpTypes(.ipv6, [.packetTooBig, .mldListenerQuery, .mldListenerReport, .mldListenerDone, .routerSolicit, .routerAdvert, .neighborSolicit, .neighborAdvert, .mld2ListenerReport])], verdict: .accept, comment: "IPv6 neighbour discovery, multicast listeners, path MTU")'),
    ('counter', None, "input", 'Rule(statements: [.counter], verdict: nil)'),
    ('limit rate 10/minute burst 5 packets', None, "input", 'Rule(statements: [.limit(RateLimit(rate: 10, per: .minute, burst: 5))], verdict: nil)'),
    ('log prefix "fwe drop: " level warn', None, "input", 'Rule(statements: [.log(prefix: "fwe drop: ", level: .warn, group: nil)], verdict: nil)'),
    ('log prefix "fwe audit: " group 5', None, "input", 'Rule(statements: [.log(prefix: "fwe audit: ", level: .warn, group: 5)], verdict: nil)'),
    ('counter log prefix "fwenforcer in audit: " group 6600 snaplen 128 accept comment "audit: would be dropped"', None, "input",
     'Rule(statements: [.counter, .log(prefix: "fwenforcer in audit: ", level: .warn, group: 6600, snaplen: 128)], verdict: .accept, comment: "audit: would be dropped")'),
    ('limit rate 5/second burst 10 packets log prefix "fwenforcer in drop: " level info', None, "input",
     'Rule(statements: [.limit(RateLimit(rate: 5, per: .second, burst: 10)), .log(prefix: "fwenforcer in drop: ", level: .info, group: nil)], verdict: nil)'),
    ('drop comment "CCM to CCO 8443"', None, "input", 'Rule(verdict: .drop, comment: "CCM to CCO 8443")'),
    ('ip saddr @CCM_v4 tcp dport 8443 counter accept comment "CCM to CCO 8443"', S4, "input",
     'Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .ports(.destination, .tcp, [PortRange(8443)])], statements: [.counter], verdict: .accept, comment: "CCM to CCO 8443")'),
    ('ip6 daddr @CCM_v6 udp dport { 5405, 5407-5410 } accept', S6, "output",
     'Rule(matches: [.addressInSet(.destination, .ipv6, set: "CCM_v6"), .ports(.destination, .udp, [PortRange(5405), PortRange(5407, 5410)])], verdict: .accept)'),
    ('ip daddr @CCM_v4 udp dport { 5671, 53229, 53333 } accept', H4, "output",
     'Rule(matches: [.addressInSet(.destination, .ipv4, set: "CCM_v4"), .ports(.destination, .udp, [PortRange(5671), PortRange(53229), PortRange(53333)])], verdict: .accept)'),
    ('ct state invalid counter limit rate 10/minute burst 5 packets log prefix "fwe invalid: " level info drop', None, "input",
     'Rule(matches: [.ctState([.invalid])], statements: [.counter, .limit(RateLimit(rate: 10, per: .minute, burst: 5)), .log(prefix: "fwe invalid: ", level: .info, group: nil)], verdict: .drop)'),
    ('ip saddr @CCM_v4 icmp type echo-request accept', S4, "input",
     'Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .icmpTypes(.ipv4, [.echoRequest])], verdict: .accept)'),
    ('meta l4proto tcp ct direction reply tcp sport 8443 accept', None, "input",
     'Rule(matches: [.transport(.tcp), .ctDirectionReply, .ports(.source, .tcp, [PortRange(8443)])], verdict: .accept)'),
    ('icmp type { destination-unreachable, time-exceeded, parameter-problem } ct state related accept comment "ICMP errors related to allowed connections"', None, "input",
     'Rule(matches: [.icmpTypes(.ipv4, [.destinationUnreachable, .timeExceeded, .parameterProblem]), .ctState([.related])], verdict: .accept, comment: "ICMP errors related to allowed connections")'),
    ('icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } ct state related accept comment "ICMPv6 errors related to allowed connections"', None, "output",
     'Rule(matches: [.icmpTypes(.ipv6, [.v6DestinationUnreachable, .packetTooBig, .v6TimeExceeded, .v6ParameterProblem]), .ctState([.related])], verdict: .accept, comment: "ICMPv6 errors related to allowed connections")'),
    # The published-ports chain on the forward hook (Compiler/PublishedPorts.swift).
    ('ct status ! dnat accept', None, "forward", 'Rule(matches: [.ctStatusDNAT(false)], verdict: .accept)'),
    ('ct status dnat counter drop comment "default deny"', None, "forward",
     'Rule(matches: [.ctStatusDNAT(true)], statements: [.counter], verdict: .drop, comment: "default deny")'),
    ('ip saddr @CCM_v4 meta l4proto tcp ct original proto-dst 5000 accept', S4, "forward",
     'Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .originalDestinationPort(.tcp, PortRange(5000))], verdict: .accept)'),
    ('ip6 saddr @CCM_v6 meta l4proto udp ct original proto-dst 1000-2000 accept', S6, "forward",
     'Rule(matches: [.addressInSet(.source, .ipv6, set: "CCM_v6"), .originalDestinationPort(.udp, PortRange(1000, 2000))], verdict: .accept)'),
]

# A hash set's elements go out in the order written; fwenforcer's model keeps them sorted, so they
# are written sorted here.
OBJECTS = """table inet fwenforcer {
  comment "managed by fwenforcerd: changes made here are reverted"
  chain input { type filter hook input priority filter; policy drop; }
  chain output { type filter hook output priority filter; policy accept; }
  set CCM_v4 { type ipv4_addr; flags interval; elements = { 198.18.0.7, 198.18.1.0/24, 198.18.3.1-198.18.3.9 } }
  set CCM_v6 { type ipv6_addr; flags interval; comment "CCM hosts"; elements = { fd00::1, 2001:db8::/64 } }
  set H_v4 { type ipv4_addr; elements = { 198.18.0.7, 198.18.0.9 } }
  set H_v6 { type ipv6_addr; elements = { 2001:db8::5, fd00::1 } }
  set Z_v4 { type ipv4_addr; flags interval; elements = { 198.18.0.0/15 } }
}
"""

NAMES = {0: "NEWTABLE", 2: "DELTABLE", 3: "NEWCHAIN", 5: "DELCHAIN", 6: "NEWRULE", 8: "DELRULE",
         9: "NEWSET", 11: "DELSET", 12: "NEWSETELEM", 14: "DELSETELEM"}

def capture(text):
    with tempfile.TemporaryDirectory() as d:
        src, cap = os.path.join(d, "in.nft"), os.path.join(d, "out.cap")
        open(src, "w").write(text)
        env = dict(os.environ, NLCAP_FILE=cap, LD_PRELOAD=NLCAP)
        subprocess.run(["unshare", "--net", "nft", "-c", "-f", src], env=env, check=True)
        out = []
        for line in open(cap):
            b = bytes.fromhex(line.strip())
            off, msgs = 0, []
            while off + 16 <= len(b):
                ln, typ = struct.unpack_from("<IH", b, off)
                msgs.append((typ, b[off + 16: off + ln]))
                off += (ln + 3) & ~3
            if msgs and msgs[0][0] == 0x10:
                out += [f'"{NAMES[t & 0xff]} {p.hex()}"' for t, p in msgs if t not in (0x10, 0x11)]
        return out

def swift_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

print("""// Generated by docs/netlink-capture/goldens.py from the batches nft 1.0.6 (libnftnl 1.2.4) sends;
// do not edit by hand. Each golden is the whole batch (BATCH_BEGIN/END aside) nft sent for a table
// with the one rule named above it: message type, then every byte after the netlink header.
@testable import Enforcer

enum NetlinkGoldens {
    struct Case: Sendable {
        var nft: String
        var set: NamedSet?
        var hook: Hook
        var rule: Rule
        var messages: [String]
    }

    static let rules: [Case] = [""")
for stmt, set_, hook, rule in CASES:
    text = "table inet fwenforcer {\n  comment \"managed by fwenforcerd: changes made here are reverted\"\n"
    if set_: text += "  " + set_[0] + "\n"
    text += f"  chain {hook} {{ type filter hook {hook} priority filter; policy drop;\n    {stmt}\n  }}\n}}\n"
    msgs = capture(text)
    print(f"        // nft: {stmt}")
    print(f"        Case(nft: {swift_string(stmt)}, set: {set_[1] if set_ else 'nil'}, hook: .{hook},")
    print(f"             rule: {rule},")
    print("             messages: [")
    for m in msgs: print(f"                {m},")
    print("             ]),")
print("    ]")
print()
print("    /// nft -f of:")
for line in OBJECTS.splitlines(): print(f"    /// {line}")
print("    static let objects: [String] = [")
for m in capture(OBJECTS): print(f"        {m},")
print("    ]")
print("}")

import Foundation
import Testing
@testable import Enforcer

/// Audit mode's pure parts: nfnetlink_log messages and packet headers (recorded bytes), the flow
/// aggregator (counts, cap, order) and the report.
@Suite struct AuditTests {
    /// Datagrams the daemon received in a namespace (strace -e read=all of `fwenforcerd run`, with
    /// ingress = "audit"): three IPv4 packets from 198.18.0.10 batched in one datagram closed by
    /// NLMSG_DONE (UDP to 9997 and 9998, a TCP SYN to 9999), then UDP from fd00::10 to fd00::20
    /// port 5353, then an ICMP echo request. Sequence numbers 0 to 4, input interface index 2.
    static let batched = bytes("""
        b4000000000400000000000000000000020019c808000100080001001a000a006677656e666f7263657220696e206175
        6469743a200000000800040000000002100008000006000082fb0d20445f000006000f000001000006001100000e0000
        12001000868e939b65fc82fb0d20445f0800000014000300000000006b01459100000000000dd6ed08000c0000000000
        210009004500001dd84040004011d64cc612000ac6120014ac35270e00098c5d78000000b40000000004000000000000
        00000000020019c808000100080001001a000a006677656e666f7263657220696e2061756469743a2000000008000400
        00000002100008000006000082fb0d20445f000006000f000001000006001100000e000012001000868e939b65fc82fb
        0d20445f0800000014000300000000006b01459100000000000dd83208000c0000000001210009004500001dd8414000
        4011d64bc612000ac61200148fbd270d00098c5d78000000d0000000000400000000000000000000020019c808000100
        080001001a000a006677656e666f7263657220696e2061756469743a2000000008000400000000021000080000060000
        82fb0d20445f000006000f000001000006001100000e000012001000868e939b65fc82fb0d20445f0800000014000300
        000000006b01459100000000000ddc8b08000c0000000002400009004500003c9b57400040061322c612000ac6120014
        a6c0270f243d3a5b00000000a002faf08c710000020405b40402080abc30d6a8000000000103030a1400000003000000
        0000000000000000000019c8
        """)
    static let ipv6UDP = bytes("""
        c80000000004000000000000000000000a0019c80800010086dd01001a000a006677656e666f7263657220696e206175
        6469743a200000000800040000000002100008000006000082fb0d20445f000006000f000001000006001100000e0000
        12001000868e939b65fc82fb0d20445f86dd000014000300000000006b014592000000000003390708000c0000000003
        350009006008e9dc00091140fd000000000000000000000000000010fd000000000000000000000000000020947914e9
        0009fa4b79000000
        """)
    static let icmpEcho = bytes("""
        b0000000000400000000000000000000020019c808000100080001001a000a006677656e666f7263657220696e206175
        6469743a200000000800040000000002100008000006000082fb0d20445f000006000f000001000006001100000e0000
        12001000868e939b65fc82fb0d20445f0800000014000300000000006b014592000000000007cde908000c0000000004
        200009004500001cf82040004001b67dc612000ac61200140800f7fe00010000
        """)

    static func bytes(_ text: String) -> [UInt8] {
        let hex = text.filter(\.isHexDigit)
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static func ip(_ s: String) -> IPAddress { IPAddress(s)! }

    @Test func recordedPacketsParse() throws {
        let packets = NflogWire.packets(in: Self.batched[...])
        #expect(packets.count == 3)
        #expect(packets.map(\.sequence) == [0, 1, 2])
        #expect(packets.allSatisfy { $0.prefix == "fwenforcer in audit: " && $0.hook == 1 && $0.inInterface == 2 && $0.family == 2 })
        #expect(packets.map(\.headers) == [
            PacketHeaders(source: Self.ip("198.18.0.10"), destination: Self.ip("198.18.0.20"), proto: 17, port: 9998),
            PacketHeaders(source: Self.ip("198.18.0.10"), destination: Self.ip("198.18.0.20"), proto: 17, port: 9997),
            PacketHeaders(source: Self.ip("198.18.0.10"), destination: Self.ip("198.18.0.20"), proto: 6, port: 9999),
        ])
        let v6 = try #require(NflogWire.packets(in: Self.ipv6UDP[...]).first)
        #expect(v6.family == 10 && v6.sequence == 3)
        #expect(v6.headers == PacketHeaders(source: Self.ip("fd00::10"), destination: Self.ip("fd00::20"), proto: 17, port: 5353))
        let icmp = try #require(NflogWire.packets(in: Self.icmpEcho[...]).first)
        #expect(icmp.headers == PacketHeaders(source: Self.ip("198.18.0.10"), destination: Self.ip("198.18.0.20"), proto: 1, icmpType: 8))
        #expect(AuditRecorder.direction(of: icmp) == .ingress)
    }

    /// Every truncation of a datagram parses without reading past its end: whole messages before
    /// the cut are kept, the cut one is dropped.
    @Test func truncatedDatagramsAreSafe() {
        for n in 0..<Self.batched.count {
            let packets = NflogWire.packets(in: Self.batched.prefix(n)[...])
            #expect(packets.count <= 3)
            for p in packets { _ = p.headers }
        }
        #expect(NflogWire.packets(in: Self.batched.prefix(180)[...]).count == 1)
    }

    @Test func truncatedPayloadsGiveWhatTheyHold() throws {
        let packet = try #require(NflogWire.packets(in: Self.batched[...]).last).payload
        // The IP header alone: addresses and protocol, no port.
        #expect(PacketHeaders.parse(Array(packet.prefix(20))) == PacketHeaders(source: Self.ip("198.18.0.10"), destination: Self.ip("198.18.0.20"), proto: 6))
        #expect(PacketHeaders.parse(Array(packet.prefix(23)))?.port == nil)
        #expect(PacketHeaders.parse(Array(packet.prefix(24)))?.port == 9999)
        for n in 0..<20 { #expect(PacketHeaders.parse(Array(packet.prefix(n))) == nil) }
        // A header length below 20 bytes is malformed.
        var bad = packet
        bad[0] = 0x44
        #expect(PacketHeaders.parse(bad) == nil)
        // A later fragment has no transport header: no port is invented from its data.
        var fragment = packet
        fragment[7] = 0x10
        #expect(PacketHeaders.parse(fragment)?.port == nil)
        #expect(PacketHeaders.parse([0x60] + [UInt8](repeating: 0, count: 30)) == nil)
    }

    @Test func ipv6ExtensionHeadersAreWalked() {
        // fd00::10 -> fd00::20, hop-by-hop options (8 bytes), then TCP to port 22.
        var p: [UInt8] = [0x60, 0, 0, 0, 0, 28, 0, 64]
        p += Self.ip("fd00::10").bytes + Self.ip("fd00::20").bytes
        p += [6, 0, 1, 4, 0, 0, 0, 0]
        p += [0xc0, 0x00, 0x00, 0x16] + [UInt8](repeating: 0, count: 16)
        #expect(PacketHeaders.parse(p) == PacketHeaders(source: Self.ip("fd00::10"), destination: Self.ip("fd00::20"), proto: 6, port: 22))
        // Cut inside the extension header: the transport is unknown, the addresses are kept.
        #expect(PacketHeaders.parse(Array(p.prefix(41)))?.proto == 0)
        #expect(PacketHeaders.parse(Array(p.prefix(41)))?.port == nil)
    }

    @Test func sequenceGapsCountLostPackets() {
        var s = NflogSequence()
        for n: UInt32 in [0, 1, 2, 5, 6, 10] { s.note(n) }
        #expect(s.lost == 5)
        s.note(nil)
        s.note(UInt32.max)  // a restart or reordering, not four billion losses
        #expect(s.lost == 5)
        s.note(0)  // wraps
        #expect(s.lost == 5)
    }

    static func key(_ d: Direction, _ src: String, _ dst: String, _ proto: UInt8 = 6, _ port: UInt16? = 9999) -> AuditFlowKey {
        AuditFlowKey(direction: d, source: ip(src), destination: ip(dst), proto: proto, port: port)
    }

    @Test func flowsCountPacketsWithFirstAndLastSeen() {
        let a = FlowAggregator(maxFlows: 10, since: Date(timeIntervalSince1970: 0))
        let t0 = Date(timeIntervalSince1970: 100)
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20"), interface: "eth0", at: t0)
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20"), interface: "eth0", at: t0 + 5)
        a.record(Self.key(.egress, "198.18.0.20", "198.18.0.30", 17, 53), at: t0 + 1)
        #expect(a.flows.count == 2)
        let r = a.flows[Self.key(.ingress, "198.18.0.10", "198.18.0.20")]
        #expect(r == FlowAggregator.Record(packets: 2, firstSeen: t0, lastSeen: t0 + 5, interface: "eth0"))
        #expect(a.packets == [.ingress: 2, .egress: 1])
        #expect(a.leftOutPackets == 0 && a.leftOutFlowsEstimate == 0)
    }

    @Test func orderIsByPacketsThenKeyWhateverTheArrivalOrder() {
        let keys = [
            Self.key(.egress, "198.18.0.20", "198.18.0.30", 17, 53),
            Self.key(.ingress, "198.18.0.11", "198.18.0.20", 6, 22),
            Self.key(.ingress, "198.18.0.10", "198.18.0.20", 6, 22),
            Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, 22),
            Self.key(.ingress, "198.18.0.10", "198.18.0.20", 1, nil),
        ]
        var orders: Set<[AuditFlowKey]> = []
        for _ in 0..<20 {
            let a = FlowAggregator(maxFlows: 100)
            for k in keys.shuffled() { a.record(k) }
            a.record(keys[0])
            orders.insert(a.sortedFlows.map(\.key))
        }
        #expect(orders == [[keys[0], keys[4], keys[2], keys[1], keys[3]]])
    }

    @Test func theCapKeepsTheFirstFlowsAndCountsTheRest() {
        let a = FlowAggregator(maxFlows: 100)
        for port in 0..<5000 {
            a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, UInt16(port)))
        }
        // Kept flows go on counting once the cap is reached.
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, 0))
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, 4999))
        #expect(a.flows.count == 100)
        #expect(a.flows[Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, 0)]?.packets == 2)
        #expect(a.flows[Self.key(.ingress, "198.18.0.10", "198.18.0.20", 17, 4999)] == nil)
        #expect(a.packets[.ingress] == 5002)
        #expect(a.leftOutPackets == 4901)
        // 4900 distinct flows left out, estimated.
        #expect((4800...5000).contains(a.leftOutFlowsEstimate), "\(a.leftOutFlowsEstimate)")
    }

    @Test func theReportNamesThePeersGroupsAtTheRightEnd() throws {
        let a = FlowAggregator(maxFlows: 2, since: Date(timeIntervalSince1970: 1_000_000))
        let t = Date(timeIntervalSince1970: 1_000_100)
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20", 6, 9999), interface: "v0", at: t)
        a.record(Self.key(.ingress, "198.18.0.10", "198.18.0.20", 6, 9999), interface: "v0", at: t)
        a.record(Self.key(.egress, "198.18.0.20", "198.19.0.7", 17, 53), at: t)
        a.record(Self.key(.egress, "198.18.0.20", "198.19.0.8", 17, 53), at: t)
        let groups = GroupMembership(["CCM_SA": [try IPPrefix.parse("198.18.0.10")], "admin_ssh": [try IPPrefix.parse("198.19.0.0/24")],
                                      "CCO": [try IPPrefix.parse("198.18.0.20")]])
        let report = AuditReport(a, membership: groups, auditing: [.ingress, .egress], group: 6600, lostPackets: 3, daemonPID: 42, now: t)
        #expect(report.flows.map(\.remoteGroups) == [["CCM_SA"], ["admin_ssh"]])
        #expect(report.flows.map(\.remoteEnd) == ["source", "destination"])
        #expect(report.flows.first?.packets == 2)
        #expect(report.totals["ingress"] == .init(packets: 2, flows: 1))
        #expect(report.totals["egress"] == .init(packets: 2, flows: 1))
        #expect(report.leftOutPackets == 1 && report.lostPackets == 3)

        let decoded = try AuditReport.decode(Data(try report.encoded()), path: "audit.json")
        #expect(decoded == report)
        #expect(report.filtered(.egress).flows.map(\.destination) == ["198.19.0.7"])

        let table = report.table()
        #expect(table.contains("If you switch to enforce, these flows break:"))
        #expect(table.contains("in   tcp    9999  198.18.0.10  198.18.0.20  2"), "\(table)")
        #expect(table.contains("source CCM_SA"))
        #expect(table.contains("Not listed: 1 packets of about 1 more flows"))
        #expect(table.contains("Lost: 3 packets"))
        // A direction neither audited nor seen is not listed.
        let ingressOnly = AuditReport(a, membership: groups, auditing: [.ingress], group: 6600, lostPackets: 0, daemonPID: 42, now: t)
        #expect(ingressOnly.filtered(.ingress).table().contains("ingress: 2 packets in 1 flows"))
        #expect(!ingressOnly.filtered(.ingress).table().contains("egress:"))
    }

    @Test func aReportFromAnotherVersionIsRefusedByName() {
        #expect(throws: AuditReportError(path: "a.json", reason: "format version 2, this fwenforcerd reads 1")) {
            try AuditReport.decode(Data(#"{"formatVersion": 2}"#.utf8), path: "a.json")
        }
        #expect(throws: AuditReportError(path: "a.json", reason: "not a fwenforcer audit report")) {
            try AuditReport.decode(Data("{}".utf8), path: "a.json")
        }
    }

    /// The config request binds the group named in the nfgenmsg (big-endian res_id) and asks for an ACK.
    @Test func configRequestsAreWellFormed() {
        let m = NflogWire.configRequest(group: 6600, sequence: 7, attributes: [(1, [1])])
        #expect(m.count == 28)
        #expect(Array(m[0..<4]) == [28, 0, 0, 0])
        #expect(Array(m[4..<8]) == [0x01, 0x04, 0x05, 0x00])
        #expect(Array(m[16..<20]) == [0, 0, 0x19, 0xc8])
        #expect(Array(m[20..<28]) == [5, 0, 1, 0, 1, 0, 0, 0])
        let ack: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 16)
        #expect(NflogWire.acknowledgement(in: ack[...], sequence: 7) == -1)
        #expect(NflogWire.acknowledgement(in: ack[...], sequence: 8) == nil)
    }
}

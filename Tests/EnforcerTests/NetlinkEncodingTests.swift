import Testing
@testable import Enforcer

/// Pure tests of the encoding: interval elements, message splitting, batch framing, ACK parsing.
@Suite struct NetlinkEncodingTests {
    static func v4(_ s: String) -> UInt128 { IPAddress(s)!.value }

    @Test func intervalElementsAsNftWritesThem() {
        // [198.18.0.7] and [198.18.1.0/24] in a new set: first segment, start, end (last + 1).
        let e = Intervals.encode([(Self.v4("198.18.0.7"), Self.v4("198.18.0.7")), (Self.v4("198.18.1.0"), Self.v4("198.18.1.255"))],
                                 bits: 32, firstSegment: true)
        #expect(e.map(\.key) == [0, Self.v4("198.18.0.7"), Self.v4("198.18.0.8"), Self.v4("198.18.1.0"), Self.v4("198.18.2.0")])
        #expect(e.map(\.isEnd) == [true, false, true, false, true])
        #expect(e.map(\.rangeIndex) == [nil, 0, 0, 1, 1])
    }

    @Test func noFirstSegmentWhenTheFirstRangeStartsAtZeroOrTheSetExists() {
        #expect(Intervals.encode([(0, 9)], bits: 32, firstSegment: true).map(\.key) == [0, 10])
        #expect(Intervals.encode([(5, 9)], bits: 32, firstSegment: false).map(\.key) == [5, 10])
    }

    @Test func rangeToTheTopHasNoEndElement() {
        let top4 = UInt128(UInt32.max)
        let e = Intervals.encode([(10, 20), (top4 - 255, top4)], bits: 32, firstSegment: true)
        #expect(e.map(\.key) == [0, 10, 21, top4 - 255])
        #expect(e.last?.isOpen == true && e.last?.isEnd == false)
        let all6 = Intervals.encode([(0, .max)], bits: 128, firstSegment: true)
        #expect(all6.count == 1 && all6[0].isOpen && all6[0].key == 0)
        // Ports: 60000-65535 in a 16-bit key space.
        #expect(Intervals.encode([(22, 22), (60000, 65535)], bits: 16, firstSegment: true).map(\.key) == [0, 22, 23, 60000])
    }

    @Test func decodeInvertsEncodeInAnyOrder() {
        let ranges: [(first: UInt128, last: UInt128)] = [(3, 3), (10, 19), (21, 21), (UInt128(UInt32.max) - 1, UInt128(UInt32.max))]
        let elements = Intervals.encode(ranges, bits: 32, firstSegment: true).map { ($0.key, $0.isEnd) }.reversed()
        let back = Intervals.decode(Array(elements), bits: 32)!
        #expect(back.map(\.first) == ranges.map(\.first) && back.map(\.last) == ranges.map(\.last))
        // Two starts in a row: not something a correct writer leaves.
        #expect(Intervals.decode([(1, false), (5, false), (9, true)], bits: 32) == nil)
    }

    /// No element list attribute passes 64 KiB; one message per 4,095 IPv4 hash elements.
    @Test(arguments: [(AddressFamily.ipv4, false, 100_000), (.ipv4, true, 60_000), (.ipv6, false, 100_000), (.ipv6, true, 100_000)])
    func elementListsAreSplitBelow64KiB(_ family: AddressFamily, _ interval: Bool, _ count: Int) throws {
        let base: UInt128 = family == .ipv4 ? Self.v4("198.18.0.0") : UInt128(0xfd00) << 112
        // Every other address, so no two are adjacent (a hash set holds single addresses).
        let ranges = (0..<count).map { i in AddressRange(family: family, first: base + UInt128(2 * i), last: base + UInt128(2 * i)) }
        let elements = ElementMessages.elements(of: SetElements(set: "S", family: family, interval: interval, ranges: ranges), firstSegment: true)
        let messages = ElementMessages.messages(add: true, table: "fwenforcer", set: "S", setID: 1, elements)
        var total = 0
        for m in messages {
            let list = parseAttributes(ArraySlice(m.bytes).dropFirst(20)).last!
            #expect(list.payload.count + 4 <= 65_535)
            total += m.elements.count
        }
        #expect(total == elements.count)
        let perElement = elements[elements.count / 2].encodedSize
        if family == .ipv4 && !interval { #expect(messages.count == 25 && messages[0].elements.count == 4_095 && perElement == 16) }
        if family == .ipv6 && !interval { #expect(perElement == 28) }
        // Elements decode back from the messages as they were written.
        let decoded = messages.flatMap { m in
            ElementMessages.decode(ReceivedMessage(type: 0, flags: 0, sequence: 0, bytes: ArraySlice(m.bytes)))!
        }
        #expect(decoded.map(\.isEnd) == elements.map(\.isEnd))
        #expect(decoded.map { Intervals.keyValue($0.key) } == elements.map(\.key))
    }

    /// The batch: BATCH_BEGIN with the generation, consecutive sequence numbers, BATCH_END only
    /// when committing.
    @Test func framing() throws {
        let tx = Transaction(table: "fwenforcer", operations: [.addTable, .addChain(BaseChain(name: "input", hook: .input, priority: 0, policy: .drop))])
        let batch = try Batch.encode(tx, builder: MessageBuilder())
        let framed = batch.framed(firstSequence: 100, generation: 0x01020304, commit: true)
        let messages = splitMessages(ArraySlice(framed))!
        #expect(messages.map(\.type) == [0x10, 0x0a00, 0x0a03, 0x11])
        #expect(messages.map(\.sequence) == [100, 101, 102, 103])
        let genid = parseAttributes(messages[0].attributes)[type: 1]!.u32
        #expect(genid == 0x01020304)
        #expect(messages[1...2].allSatisfy { $0.flags & UInt16(0x4) != 0 }, "every message asks for an ACK")
        let dryRun = splitMessages(ArraySlice(batch.framed(firstSequence: 1, generation: 7, commit: false)))!
        #expect(dryRun.last?.type == 0x0a03, "no BATCH_END: the kernel validates and aborts")
    }

    /// An error's extended-ACK offset picks the element it points into.
    @Test func errorOffsetNamesTheElement() throws {
        let ranges = [NetlinkFixtures.range("198.18.0.7", "198.18.0.7"), NetlinkFixtures.range("198.18.1.0", "198.18.1.255")]
        let tx = Transaction(table: "fwenforcer", operations: [.addElements(SetElements(set: "CCM_v4", family: .ipv4, interval: true, ranges: ranges))])
        let batch = try Batch.encode(tx, builder: MessageBuilder())
        let m = batch.messages[0]
        let offsets = m.elements.map(\.offset)
        #expect(m.subject(atOffset: nil) == "set CCM_v4")
        // The set exists already (no addSet in this batch), so there is no first segment.
        #expect(offsets.count == 4)
        #expect(m.subject(atOffset: offsets[0] + 8) == "set CCM_v4 element 198.18.0.7")
        #expect(m.subject(atOffset: offsets[1]) == "set CCM_v4 element 198.18.0.7")      // its end element
        #expect(m.subject(atOffset: offsets[2]) == "set CCM_v4 element 198.18.1.0/24")
    }

    /// What the kernel could not take is refused before anything is sent, named like a kernel
    /// rejection: interface names longer than IFNAMSIZ - 1, comments longer than nft allows.
    @Test func unencodableRulesAreRefused() {
        let long = Rule(matches: [.interface(.input, "a-very-long-ifname")], verdict: .accept)
        #expect(throws: BackendError.rejected([Rejection(object: "rule \"iifname \"a-very-long-ifname\" accept\" in chain input", code: .invalidArgument,
                                                         kernelMessage: "interface name \"a-very-long-ifname\" is longer than 15 bytes")])) {
            _ = try Batch.encode(Transaction(table: "t", operations: [.addRule(chain: "input", long)]), builder: MessageBuilder())
        }
        let chatty = Rule(verdict: .drop, comment: String(repeating: "x", count: 129))
        #expect(throws: BackendError.self) {
            _ = try Batch.encode(Transaction(table: "t", operations: [.addRule(chain: "input", chatty)]), builder: MessageBuilder())
        }
        let set = SetDefinition(name: "S", family: .ipv4, interval: true, comment: String(repeating: "y", count: 200))
        #expect(throws: BackendError.self) {
            _ = try Batch.encode(Transaction(table: "t", operations: [.addSet(set)]), builder: MessageBuilder())
        }
    }
}

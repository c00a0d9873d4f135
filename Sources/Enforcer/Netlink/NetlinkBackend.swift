import CNftables
import Glibc
import SystemPackage

/// The kernel `Backend`: nf_tables over one long-lived netlink socket, through libnftnl and libmnl.
/// No `nft` process is involved.
///
/// - `apply` sends one batch per transaction, with the ruleset generation on BATCH_BEGIN
///   (compare-and-swap), reads every ACK and maps each error back to the object (or set element)
///   that caused it by sequence number and extended-ACK offset.
/// - `check` sends the same batch without BATCH_END: the kernel validates it and aborts.
/// - `read` dumps the table's chains, sets, elements and rules between two generation reads and
///   retries when they differ, so the snapshot is consistent.
///
/// Not thread-safe: the daemon serialises reconciles, and so must any other caller.
public final class NetlinkBackend: Backend {
    private let socket: NetlinkSocket
    private let builder = MessageBuilder()
    private var receiveBuffer: UnsafeMutableRawBufferPointer
    /// How many times a batch is re-sent with a fresh generation when the kernel answers ERESTART
    /// to a transaction that carries no generation of its own.
    public var maxRestarts = 3
    /// Runs after the generation is taken and before the batch is sent (tests play a concurrent
    /// writer here).
    var beforeSend: (() -> Void)?
    /// Receive buffer asked for per message of a batch: every message is acknowledged, and one
    /// ACK costs about 1 KiB of buffer (skb overhead included), as nft also assumes. Tests lower it
    /// to provoke lost ACKs.
    var receiveBufferPerMessage = 1024
    /// Whether the tables this backend creates are owned by its socket (`claim(table:)`).
    public var tableOwnership: TableOwnership = .shared { didSet { tableFlags = tableOwnership.flags } }
    /// The flags on every NEWTABLE (tests add a flag this kernel does not know, as a kernel before
    /// 6.9 does not know NFT_TABLE_F_PERSIST).
    var tableFlags: UInt32 = 0
    /// Answers whether every commit after generation `from` up to `to` left `table` alone (the
    /// daemon asks its nftables monitor). Lets `read` accept dumps taken while other tables changed.
    public var tableUntouched: ((_ table: String, _ from: UInt32, _ to: UInt32) -> Bool)?
    /// ERESTART (Linux errno 85), the kernel's answer to a batch whose generation is stale.
    static let erestart: Int32 = 85

    public init() throws(BackendError) {
        socket = try NetlinkSocket()
        receiveBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
    }

    deinit {
        assert(!socket.isOpen, "NetlinkBackend released without close()")
        socket.close()
        receiveBuffer.deallocate()
    }

    /// True when the kernel refused to force the socket buffers (no CAP_NET_ADMIN in the initial
    /// user namespace, as in most containers) and the capped plain options were used instead.
    var socketBufferForceRefused: Bool { socket.forceRefused }

    /// The netlink port id of the socket batches are sent from: the kernel names it as the sender
    /// of every notification about them (how the monitor recognises fwenforcer's own commits).
    public var portID: UInt32 { socket.portID }

    /// Closes the netlink socket; the backend cannot be used afterwards.
    public func close() { socket.close() }

    // MARK: - generation

    /// The current ruleset generation (NFT_MSG_GETGEN).
    public func generation() throws(BackendError) -> UInt32 {
        let request = builder.build(NFT_MSG_GETGEN, flags: NLM_F_REQUEST, family: UInt8(AF_UNSPEC)) { _ in }
        let replies = try exchange(request)
        for m in replies where m.type == UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(NFT_MSG_NEWGEN.rawValue) {
            if let id = parseAttributes(m.attributes)[type: NFTA_GEN_ID.rawValue]?.u32 { return id }
        }
        throw .protocolViolation("GETGEN was not answered with a generation id")
    }

    // MARK: - apply and check

    public func apply(_ tx: Transaction) throws(BackendError) -> ApplyReport {
        let start = ContinuousClock.now
        let batch = try Batch.encode(tx, builder: builder, tableFlags: tableFlags)
        let (bytes, retries, generation) = try send(batch, generation: tx.generation, commit: true)
        let counts = tx.counts
        // The kernel checked the batch against `generation` under its commit lock and committed
        // it as the next generation.
        return ApplyReport(messages: batch.messages.count, bytes: bytes, added: counts.added, removed: counts.removed,
                           flushedChains: counts.flushedChains, retries: retries, duration: ContinuousClock.now - start,
                           generation: Generation.next(after: generation))
    }

    public func check(_ tx: Transaction) throws(BackendError) {
        let batch = try Batch.encode(tx, builder: builder, tableFlags: tableFlags)
        _ = try send(batch, generation: tx.generation, commit: false)
    }

    /// Frames, sends and confirms a batch. With no generation of the transaction's own, the current
    /// one is taken right before sending, and an ERESTART (someone committed in between) retries.
    private func send(_ batch: Batch, generation: UInt32?, commit: Bool) throws(BackendError) -> (bytes: Int, retries: Int, generation: UInt32) {
        var retries = 0
        while true {
            let gen: UInt32
            if let generation { gen = generation } else { gen = try self.generation() }
            let first = socket.reserveSequences(batch.messages.count + 2)
            let bytes = batch.framed(firstSequence: first, generation: gen, commit: commit)
            beforeSend?()
            do throws(BackendError) {
                try transmit(bytes, batch: batch, firstSequence: first, generation: gen)
                return (bytes.count, retries, gen)
            } catch .generationChanged(let expected) {
                guard generation == nil, retries < maxRestarts else { throw .generationChanged(expected: expected) }
                retries += 1
            }
        }
    }

    private func transmit(_ bytes: [UInt8], batch: Batch, firstSequence: UInt32, generation: UInt32) throws(BackendError) {
        // netlink refuses a datagram larger than the send buffer minus 32 bytes of overhead.
        let sendBuffer = try socket.ensureSendBuffer(bytes.count + 4096)
        guard bytes.count + 32 <= sendBuffer else { throw .batchTooLarge(bytes: bytes.count, sendBuffer: sendBuffer) }
        // Every message is acknowledged, and all ACKs are queued while the kernel processes the
        // batch inside sendmsg: one ACK skb costs about 1 KiB of receive buffer (as nft assumes).
        try socket.ensureReceiveBuffer(batch.messages.count * receiveBufferPerMessage + 64 * 1024)
        try socket.send(bytes)

        let lastSequence = firstSequence &+ UInt32(batch.messages.count)
        var acknowledged = Set<UInt32>()
        var rejections: [Rejection] = []
        var lost = false
        var beginError: Acknowledgement?
        while true {
            let n: Int?
            do throws(BackendError) {
                n = try socket.receive(into: receiveBuffer, wait: false)
            } catch .system(_, .noBufferSpace) {
                lost = true
                continue
            }
            guard let n else { break }
            guard let messages = splitMessages(ArraySlice(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<n]))) else {
                throw .protocolViolation("truncated acknowledgement")
            }
            for m in messages {
                guard let ack = Acknowledgement(m) else { continue }
                if ack.sequence == firstSequence {
                    beginError = ack
                    continue
                }
                let index = Int(ack.sequence &- firstSequence) - 1
                guard index >= 0, index < batch.messages.count, ack.sequence != lastSequence &+ 1 else { continue }
                acknowledged.insert(ack.sequence)
                if ack.error != 0 {
                    let message = batch.messages[index]
                    rejections.append(Rejection(object: message.subject(atOffset: ack.attributeOffset),
                                                code: Errno(rawValue: -ack.error), kernelMessage: ack.kernelMessage))
                }
            }
        }
        if let begin = beginError, begin.error != 0 {
            let code = Errno(rawValue: -begin.error)
            // ERESTART on BATCH_BEGIN: the generation did not match (the kernel drops the batch).
            if code.rawValue == NetlinkBackend.erestart { throw .generationChanged(expected: generation) }
            rejections.insert(Rejection(object: "the transaction on table inet \(batch.table)", code: code,
                                        kernelMessage: begin.kernelMessage), at: 0)
        }
        if !rejections.isEmpty { throw .rejected(rejections) }
        if acknowledged.count != batch.messages.count {
            let missing = batch.messages.count - acknowledged.count
            throw .outcomeUnknown("\(missing) of \(batch.messages.count) messages were not acknowledged"
                                  + (lost ? " (the receive buffer overflowed)" : ""))
        }
    }

    // MARK: - read

    public func read(table: String) throws(BackendError) -> Snapshot {
        var lastGeneration: UInt32 = 0
        for attempt in 0..<6 {
            if attempt > 0 { usleep(useconds_t(20_000 * attempt)) }
            let before = try generation()
            lastGeneration = before
            let dumped = try dumpTable(table, generation: before)
            let after = try generation()
            let consistent = after == before && dumped?.interrupted != true
            // Another writer committed during the dumps: still consistent for this table when the
            // caller's monitor saw that none of those commits touched it (a busy fail2ban or
            // kube-proxy must not make every read fail).
            guard consistent || tableUntouched?(table, before, after) == true else { continue }
            guard var snapshot = dumped?.0 else { return Snapshot(ruleset: nil, generation: after) }
            snapshot.generation = after
            return snapshot
        }
        throw .generationChanged(expected: lastGeneration)
    }

    /// Dumps one table; nil when it does not exist. What the model cannot express (another
    /// writer's rules, chains and sets) is listed in `foreign` rather than failing the read, so the
    /// caller can replace it and say what it removed. `interrupted` is true when a dump was marked
    /// inconsistent (NLM_F_DUMP_INTR).
    private func dumpTable(_ table: String, generation: UInt32) throws(BackendError) -> (Snapshot, interrupted: Bool)? {
        let tableReplies: [ReceivedMessage]
        do throws(BackendError) {
            tableReplies = try exchange(TableMessages.get(table, builder))
        } catch .system(_, .noSuchFileOrDirectory) {
            return nil
        }
        let marked = tableReplies.lazy.compactMap(TableMessages.decode).first?.marked ?? false
        var interrupted = false
        var foreign: [String] = []

        let chainReplies = try dump(NFT_MSG_GETCHAIN, attributes: [(UInt16(NFTA_CHAIN_TABLE.rawValue), table)], interrupted: &interrupted)
        let setReplies = try dump(NFT_MSG_GETSET, attributes: [(UInt16(NFTA_SET_TABLE.rawValue), table)], interrupted: &interrupted)
        let ruleReplies = try dump(NFT_MSG_GETRULE, attributes: [(UInt16(NFTA_RULE_TABLE.rawValue), table)], interrupted: &interrupted)

        var named: [NamedSet] = []
        var anonymous: Delinearize.AnonymousSets = [:]
        for m in setReplies {
            guard let s = SetMessages.decode(m) else { throw .protocolViolation("undecodable set") }
            guard s.table == table else { continue }
            let elements = try dumpElementKeys(table: table, set: s.name, interrupted: &interrupted)
            // A hash set being resized (the kernel's rhashtable grows in a worker after a large
            // insert) can be dumped with elements repeated and others missing, with no
            // NLM_F_DUMP_INTR: a repeated element marks the dump as torn, and it is taken again.
            if !s.isInterval, Set(elements.lazy.map(\.key)).count != elements.count {
                interrupted = true
            }
            do throws(BackendError) {
                if s.isAnonymous {
                    anonymous[s.name] = try anonymousSet(s, elements)
                } else {
                    named.append(try namedSet(s, elements))
                }
            } catch .unrepresentable(let what) {
                if !s.isAnonymous { foreign.append(what) }
            }
        }

        var chains: [Chain] = []
        for m in chainReplies {
            guard let c = ChainMessages.decode(m) else { throw .protocolViolation("undecodable chain") }
            guard c.table == table else { continue }
            guard c.type == "filter", let hookNumber = c.hook, let hook = Hook(netfilterHook: hookNumber),
                  let policyCode = c.policy, let policy = Verdict(netfilterCode: Int32(bitPattern: policyCode)) else {
                foreign.append("chain \(c.name) (\(c.describedType))")
                continue
            }
            chains.append(Chain(name: c.name, hook: hook, priority: c.priority, policy: policy, rules: []))
        }
        for m in ruleReplies {
            guard let r = RuleMessages.decode(m) else { throw .protocolViolation("undecodable rule") }
            guard r.table == table else { continue }
            let comment = r.userdata?.string(Int(NFTNL_UDATA_RULE_COMMENT.rawValue))
            guard let i = chains.firstIndex(where: { $0.name == r.chain }) else {
                // A rule of a foreign chain goes with its chain.
                continue
            }
            do throws(BackendError) {
                chains[i].rules.append(try Delinearize.rule(r, anonymousSets: anonymous))
            } catch .unrepresentable {
                foreign.append("rule in chain \(r.chain): \(ForeignRuleText.describe(r.expressions, comment: comment))")
            }
        }
        chains.sort(by: Chain.kernelOrder)
        let ruleset = Ruleset(tableName: table, sets: named, chains: chains)
        return (Snapshot(ruleset: ruleset, generation: generation, marked: marked, foreign: foreign), interrupted)
    }

    /// One dump of the table's rules (no sets, no elements): cheap whatever the number of peers.
    public func counters(table: String) throws(BackendError) -> [RuleCounter] {
        var interrupted = false
        let replies: [ReceivedMessage]
        do throws(BackendError) {
            replies = try dump(NFT_MSG_GETRULE, attributes: [(UInt16(NFTA_RULE_TABLE.rawValue), table)], interrupted: &interrupted)
        } catch .system(_, .noSuchFileOrDirectory) {
            return []
        }
        var out: [RuleCounter] = []
        for m in replies {
            // The kernel filters the dump by table; a message that does not parse is a protocol error.
            guard RuleMessages.decode(m)?.table == table else { continue }
            if let c = RuleMessages.counter(m) { out.append(c) }
        }
        return out
    }

    private func namedSet(_ s: DumpedSet, _ elements: [(key: UInt128, isEnd: Bool)]) throws(BackendError) -> NamedSet {
        let family: AddressFamily
        switch (s.keyType, s.keyLength) {
        case (SetMessages.keyType(.ipv4), 4): family = .ipv4
        case (SetMessages.keyType(.ipv6), 16): family = .ipv6
        default: throw .unrepresentable("set \(s.name) has key type \(s.keyType) of \(s.keyLength) bytes")
        }
        guard s.flags & ~NFT_SET_INTERVAL.rawValue == 0 else {
            throw .unrepresentable("set \(s.name) has flags 0x\(String(s.flags, radix: 16))")
        }
        let set: AddressSet
        if s.isInterval {
            guard let decoded = Intervals.decode(elements, bits: family.bits) else {
                throw .unrepresentable("set \(s.name) holds overlapping intervals")
            }
            set = AddressSet(family: family, ranges: decoded.map { AddressRange(family: family, first: $0.first, last: $0.last) })
        } else {
            // A hash set's elements are single addresses, adjacent ones each its own element.
            set = AddressSet(family: family, hosts: elements.map { IPAddress(family: family, value: $0.key) })
        }
        return NamedSet(name: s.name, family: family, interval: s.isInterval, elements: set, comment: s.userdata.setComment)
    }

    private func anonymousSet(_ s: DumpedSet, _ elements: [(key: UInt128, isEnd: Bool)]) throws(BackendError) -> AnonymousSet {
        guard let keyType = AnonymousSet.KeyType(rawValue: s.keyType), Int(s.keyLength) == keyType.byteCount else {
            throw .unrepresentable("anonymous set \(s.name) has key type \(s.keyType)")
        }
        let values = elements
        let ranges: [AnonymousSet.KeyRange]
        if s.isInterval {
            guard let decoded = Intervals.decode(values, bits: keyType.byteCount * 8) else {
                throw .unrepresentable("anonymous set \(s.name) holds overlapping intervals")
            }
            ranges = decoded.map { .init(first: $0.first, last: $0.last) }
        } else {
            ranges = values.map { .init(first: $0.0, last: $0.0) }.sorted { $0.first < $1.first }
        }
        return AnonymousSet(keyType: keyType, interval: s.isInterval, ranges: ranges,
                            typeofUserdata: .init(protocolDescription: 0, field: 0))
    }

    /// The elements the kernel holds for one set, as it stores them (start and end elements, the
    /// first segment included), sorted by key: for tests that compare with what nft leaves.
    func storedElements(table: String, set: String) throws(BackendError) -> [(key: [UInt8], isEnd: Bool)] {
        var interrupted = false
        return try dumpElements(table: table, set: set, interrupted: &interrupted)
            .sorted { ($0.key.lexicographicallyPrecedes($1.key)) || ($0.key == $1.key && $0.isEnd && !$1.isEnd) }
    }

    private func dumpElements(table: String, set: String, interrupted: inout Bool) throws(BackendError) -> [(key: [UInt8], isEnd: Bool)] {
        var out: [(key: [UInt8], isEnd: Bool)] = []
        for m in try collect(ElementMessages.dumpRequest(table: table, set: set), interrupted: &interrupted) {
            guard let elements = ElementMessages.decode(m) else { throw .protocolViolation("undecodable elements of set \(set)") }
            out += elements
        }
        return out
    }

    /// Dumps the elements of every named set of `table` and only counts what arrives, decoding
    /// nothing: the kernel's own cost of reading the sets back, which benchmarks hold `read` against.
    public func rawElementDump(table: String) throws(BackendError) -> (sets: Int, bytes: Int) {
        var interrupted = false
        let names = try dump(NFT_MSG_GETSET, attributes: [(UInt16(NFTA_SET_TABLE.rawValue), table)], interrupted: &interrupted)
            .compactMap(SetMessages.decode).filter { $0.table == table && !$0.isAnonymous }.map(\.name)
        var total = 0
        for name in names {
            var request = ElementMessages.dumpRequest(table: table, set: name)
            let seq = socket.reserveSequences(1)
            for k in 0..<4 { request[8 + k] = UInt8(truncatingIfNeeded: seq >> (8 * UInt32(k))) }
            try socket.send(request)
            receiving: while true {
                guard let n = try socket.receive(into: receiveBuffer, wait: true) else { continue }
                total += n
                var offset = 0
                while offset + 16 <= n {
                    let length = Int(receiveBuffer.load(fromByteOffset: offset, as: UInt32.self))
                    let type = receiveBuffer.load(fromByteOffset: offset + 4, as: UInt16.self)
                    let sequence = receiveBuffer.load(fromByteOffset: offset + 8, as: UInt32.self)
                    if sequence == seq && type == UInt16(NLMSG_DONE) { break receiving }
                    if sequence == seq && type == UInt16(NLMSG_ERROR) {
                        let error = receiveBuffer.load(fromByteOffset: offset + 16, as: Int32.self)
                        if error != 0 { throw .system(call: "netlink dump", Errno(rawValue: -error)) }
                    }
                    guard length >= 16 else { throw .protocolViolation("truncated dump message") }
                    offset += netlinkAlign(length)
                }
            }
        }
        return (names.count, total)
    }

    /// A set's elements as key values, parsed in place from the receive buffer (no copies of the
    /// messages, no per-element arrays).
    private func dumpElementKeys(table: String, set: String, interrupted: inout Bool) throws(BackendError) -> [(key: UInt128, isEnd: Bool)] {
        var request = ElementMessages.dumpRequest(table: table, set: set)
        let seq = socket.reserveSequences(1)
        for k in 0..<4 { request[8 + k] = UInt8(truncatingIfNeeded: seq >> (8 * UInt32(k))) }
        try socket.send(request)
        var out: [(key: UInt128, isEnd: Bool)] = []
        while true {
            guard let n = try socket.receive(into: receiveBuffer, wait: true) else { continue }
            let buffer = UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<n])
            var offset = 0
            while n - offset >= 16 {
                let length = Int(buffer.load(fromByteOffset: offset, as: UInt32.self))
                guard length >= 16, offset + length <= n else { throw .protocolViolation("truncated dump message") }
                let type = buffer.load(fromByteOffset: offset + 4, as: UInt16.self)
                let flags = buffer.load(fromByteOffset: offset + 6, as: UInt16.self)
                let sequence = buffer.load(fromByteOffset: offset + 8, as: UInt32.self)
                let message = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)])
                offset += netlinkAlign(length)
                guard sequence == seq else { continue }
                if flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                if type == UInt16(NLMSG_DONE) { return out }
                if type == UInt16(NLMSG_ERROR) {
                    let error = length >= 20 ? message.load(fromByteOffset: 16, as: Int32.self) : 0
                    if error != 0 { throw .system(call: "netlink dump", Errno(rawValue: -error)) }
                    continue
                }
                // After the 16-byte netlink header, the 4-byte nfgenmsg, then the attributes.
                guard length >= 20, ElementMessages.appendKeys(UnsafeRawBufferPointer(rebasing: message[20...]), to: &out) else {
                    throw .protocolViolation("undecodable elements of set \(set)")
                }
            }
        }
    }

    // MARK: - request / reply

    /// A dump request of `type` for `family` (default inet), filtered by string attributes.
    func dump(_ type: nf_tables_msg_types, family: UInt8 = familyInet, attributes: [(UInt16, String)],
              interrupted: inout Bool) throws(BackendError) -> [ReceivedMessage] {
        var request = builder.build(type, flags: NLM_F_REQUEST | NLM_F_DUMP, family: family) { _ in }
        for (t, v) in attributes { request.appendAttribute(type: t, Array(v.utf8) + [0]) }
        let n = UInt32(request.count)
        for k in 0..<4 { request[k] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(k))) }
        return try collect(request, interrupted: &interrupted)
    }

    /// Sends a dump request and gathers the replies until NLMSG_DONE.
    private func collect(_ request: [UInt8], interrupted: inout Bool) throws(BackendError) -> [ReceivedMessage] {
        var request = request
        let seq = socket.reserveSequences(1)
        for k in 0..<4 { request[8 + k] = UInt8(truncatingIfNeeded: seq >> (8 * UInt32(k))) }
        try socket.send(request)
        var out: [ReceivedMessage] = []
        while true {
            guard let n = try socket.receive(into: receiveBuffer, wait: true) else { continue }
            // Copy out: the buffer is reused by the next receive.
            guard let messages = splitMessages(ArraySlice(Array(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<n])))) else {
                throw .protocolViolation("truncated dump message")
            }
            for m in messages where m.sequence == seq {
                if m.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                if m.type == UInt16(NLMSG_DONE) { return out }
                if m.type == UInt16(NLMSG_ERROR), let ack = Acknowledgement(m) {
                    if ack.error == 0 { continue }
                    throw .system(call: "netlink dump", Errno(rawValue: -ack.error))
                }
                out.append(m)
            }
        }
    }

    /// Sends one non-dump request and returns its reply messages (an error reply throws).
    private func exchange(_ request: [UInt8]) throws(BackendError) -> [ReceivedMessage] {
        var request = request
        let seq = socket.reserveSequences(1)
        for k in 0..<4 { request[8 + k] = UInt8(truncatingIfNeeded: seq >> (8 * UInt32(k))) }
        try socket.send(request)
        while true {
            guard let n = try socket.receive(into: receiveBuffer, wait: true) else { continue }
            guard let messages = splitMessages(ArraySlice(Array(UnsafeRawBufferPointer(rebasing: receiveBuffer[0..<n])))) else {
                throw .protocolViolation("truncated reply")
            }
            let mine = messages.filter { $0.sequence == seq }
            guard !mine.isEmpty else { continue }
            if let ack = mine.lazy.compactMap(Acknowledgement.init).first, ack.error != 0 {
                throw .system(call: "netlink request", Errno(rawValue: -ack.error))
            }
            return mine
        }
    }
}

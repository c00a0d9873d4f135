import CNftables
import SystemPackage

/// The nf_tables messages of one transaction, each with the object it acts on, ready to be framed
/// between BATCH_BEGIN and BATCH_END.
///
/// Encoding (transaction → messages) is separate from transport (socket, framing, ACKs), as in
/// nft's `mnl.c`: the batch can be built, inspected and compared with nft's bytes without a kernel.
struct Batch {
    struct Message {
        /// The whole message; its sequence number is written when the batch is framed.
        var bytes: [UInt8]
        /// What it acts on; named in nft words only when the kernel rejects it (rendering a rule
        /// for every message of every batch cost a one-shot apply 8 % of its instructions).
        var about: Subject
        /// For element messages: where each element starts and which range it stores.
        var elements: [(offset: Int, rangeIndex: Int?)] = []
        /// The set and ranges the element messages were written from (shared, not copied).
        var elementSource: SetElements?

        var type: UInt16 { UInt16(bytes[4]) | UInt16(bytes[5]) << 8 }

        /// The object it acts on, in nft words.
        var subject: String {
            switch about {
            case .named(let text): return text
            case .operation(let op, let tx): return tx.subject(of: op)
            }
        }

        /// The object an error refers to, using the extended ACK's attribute offset when given:
        /// `set CCM_v4 element 198.18.0.7`.
        func subject(atOffset offset: Int?) -> String {
            guard let offset, let source = elementSource, let hit = elements.last(where: { $0.offset <= offset }) else { return subject }
            guard let index = hit.rangeIndex else { return "set \(source.set) first segment" }
            return Transaction.elementSubject(set: source.set, source.ranges[index])
        }
    }

    /// What a message acts on: a fixed name, or an operation of a transaction (kept by reference
    /// to the transaction's storage, not copied).
    enum Subject {
        case named(String)
        case operation(Transaction.Operation, of: Transaction)
    }

    var table: String
    var messages: [Message] = []

    /// Encodes a transaction as nft would write the same commands.
    /// `tableFlags` go on every NEWTABLE (an owned table's NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST).
    static func encode(_ tx: Transaction, builder b: MessageBuilder, tableFlags: UInt32 = 0) throws(BackendError) -> Batch {
        var batch = Batch(table: tx.table)
        let table = tx.table
        var nextSetID: UInt32 = 1
        // Named sets created in this batch: their ids (lookups and element messages send them),
        // and whether their first elements are still to come (those get nft's first segment).
        var createdSets: [String: UInt32] = [:]
        var awaitingFirstElements: Set<String> = []

        func append(_ bytes: [UInt8], _ about: Subject) { batch.messages.append(Message(bytes: bytes, about: about)) }

        for old in tx.retiredTables {
            append(TableMessages.delete(old, b), .named("table inet \(old)"))
        }

        for op in tx.operations {
            let about = Subject.operation(op, of: tx)
            var subject: String { tx.subject(of: op) }
            switch op {
            case .addTable:
                append(TableMessages.add(table, flags: tableFlags, b), about)
            case .deleteTable:
                append(TableMessages.delete(table, b), about)
                createdSets.removeAll()
                awaitingFirstElements.removeAll()
            case .addChain(let c):
                append(ChainMessages.add(table: table, c, b), about)
            case .deleteChain(let name):
                append(ChainMessages.delete(table: table, name, b), about)
            case .flushChain(let name):
                append(ChainMessages.flush(table: table, name, b), about)
            case .addSet(let s):
                if let comment = s.comment, comment.utf8.count > Userdata.commentMaxLength {
                    throw .rejected([Rejection(object: subject, code: .invalidArgument,
                                               kernelMessage: "comment longer than \(Userdata.commentMaxLength) bytes")])
                }
                let id = nextSetID
                nextSetID += 1
                createdSets[s.name] = id
                awaitingFirstElements.insert(s.name)
                append(SetMessages.add(table: table, s, id: id, b), about)
            case .deleteSet(let name):
                createdSets[name] = nil
                awaitingFirstElements.remove(name)
                append(SetMessages.delete(table: table, name, b), about)
            case .addElements(let e), .deleteElements(let e):
                var add = false
                if case .addElements = op { add = true }
                let firstSegment = add && awaitingFirstElements.contains(e.set)
                if add { awaitingFirstElements.remove(e.set) }
                let elements = ElementMessages.elements(of: e, firstSegment: firstSegment)
                for m in ElementMessages.messages(add: add, table: table, set: e.set, setID: createdSets[e.set], elements) {
                    batch.messages.append(Message(bytes: m.bytes, about: about, elements: m.elements, elementSource: e))
                }
            case .addRule(let chain, let rule):
                var anonymousIDs: [UInt32] = []
                let linear: LinearizedRule
                do throws(BackendError) {
                    linear = try Linearize.rule(rule, namedSetID: { createdSets[$0] ?? 0 }, anonymousSetID: {
                        let id = nextSetID
                        nextSetID += 1
                        anonymousIDs.append(id)
                        return id
                    })
                } catch .rejected(let list) {
                    // Name the rule with its chain.
                    throw .rejected(list.map { Rejection(object: subject, code: $0.code, kernelMessage: $0.kernelMessage) })
                }
                for (s, id) in zip(linear.anonymousSets, anonymousIDs) {
                    append(SetMessages.addAnonymous(table: table, s, id: id, b), about)
                    let elements = ElementMessages.elements(of: s)
                    for m in ElementMessages.messages(add: true, table: table, set: Linearize.anonymousSetName, setID: id, elements) {
                        batch.messages.append(Message(bytes: m.bytes, about: about))
                    }
                }
                append(RuleMessages.add(table: table, chain: chain, linear, b), about)
            }
        }
        return batch
    }

    var byteCount: Int { messages.reduce(0) { $0 + $1.bytes.count } + 2 * 20 + 8 }

    /// BATCH_BEGIN (with the generation for compare-and-swap), the messages, and BATCH_END when
    /// `commit`; without BATCH_END the kernel checks every message and then aborts, which is
    /// fwenforcer's kernel-validated dry run. Sequence numbers run from `firstSequence` (BATCH_BEGIN).
    func framed(firstSequence: UInt32, generation: UInt32?, commit: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        out += Batch.control(UInt16(NFNL_MSG_BATCH_BEGIN), sequence: firstSequence, generation: generation)
        var seq = firstSequence
        for m in messages {
            seq &+= 1
            var bytes = m.bytes
            for k in 0..<4 { bytes[8 + k] = UInt8(truncatingIfNeeded: seq >> (8 * UInt32(k))) }
            out += bytes
            out += repeatElement(0, count: (4 - bytes.count % 4) % 4)
        }
        if commit { out += Batch.control(UInt16(NFNL_MSG_BATCH_END), sequence: seq &+ 1, generation: nil) }
        return out
    }

    /// BATCH_BEGIN / BATCH_END: res_id is the nf_tables subsystem (network order); BEGIN may carry
    /// NFNL_BATCH_GENID, which the kernel compares with its generation before taking the batch.
    static func control(_ type: UInt16, sequence: UInt32, generation: UInt32?) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0, 0, UInt8(type & 0xff), UInt8(type >> 8)]
        bytes += [UInt8(NLM_F_REQUEST), 0]
        bytes += withUnsafeBytes(of: sequence.littleEndian) { Array($0) } + [0, 0, 0, 0]
        bytes += [UInt8(AF_UNSPEC), UInt8(NFNETLINK_V0), 0, UInt8(NFNL_SUBSYS_NFTABLES)]
        if let generation { bytes.appendAttribute(type: UInt16(NFNL_BATCH_GENID.rawValue), .bigEndian(generation)) }
        let n = UInt32(bytes.count)
        for k in 0..<4 { bytes[k] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(k))) }
        return bytes
    }
}

/// One acknowledgement (NLMSG_ERROR): error 0 is success.
struct Acknowledgement {
    var sequence: UInt32
    var error: Int32
    var kernelMessage: String?
    /// Offset of the failing attribute from the start of the acknowledged message (extended ACK).
    var attributeOffset: Int?

    init?(_ m: ReceivedMessage) {
        guard m.type == UInt16(NLMSG_ERROR), m.bytes.count >= 36 else { return nil }
        let p = m.bytes.startIndex + 16
        error = Int32(bitPattern: m.bytes.hostU32(at: p))
        sequence = m.sequence
        // struct nlmsgerr: the error, then the original header; its payload only when not capped.
        var tlvStart = p + 4 + 16
        if m.flags & UInt16(NLM_F_CAPPED) == 0, error != 0 {
            let originalLength = Int(m.bytes.hostU32(at: p + 4))
            tlvStart = p + 4 + netlinkAlign(originalLength)
        }
        guard m.flags & UInt16(NLM_F_ACK_TLVS) != 0, tlvStart < m.bytes.endIndex else { return }
        for a in parseAttributes(m.bytes[tlvStart...]) {
            switch Int(a.type) {
            case Int(NLMSGERR_ATTR_MSG.rawValue): kernelMessage = a.string
            case Int(NLMSGERR_ATTR_OFFS.rawValue): attributeOffset = Int(a.payload.hostU32(at: a.payload.startIndex))
            default: break
            }
        }
    }
}

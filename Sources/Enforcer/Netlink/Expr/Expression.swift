import CNftables

/// One nf_tables expression as fwenforcer writes and reads it: the Swift value of a
/// `struct nftnl_expr`. Only the expressions (and attributes) that nft emits for the statements in
/// `Match` and `Statement` are modelled; anything else reads back as `.unknown`.
enum Expression: Hashable, CustomStringConvertible {
    case meta(MetaKey, register: UInt32)
    case payload(PayloadBase, offset: UInt32, length: UInt32, register: UInt32)
    case cmp(CmpOperator, register: UInt32, data: [UInt8])
    case bitwise(register: UInt32, length: UInt32, mask: [UInt8], xor: [UInt8])
    case lookup(set: String, setID: UInt32, register: UInt32)
    case ct(CtKey, register: UInt32)
    /// `ct original KEY`: a key of the connection's original-direction tuple.
    case ctOriginal(CtKey, register: UInt32)
    /// `counter`: nft sends no packet or byte values for a new counter (libnftnl writes an empty
    /// attribute nest), and the values are kernel state, never read back into the model.
    case counter
    case limit(rate: UInt64, unitSeconds: UInt64, burst: UInt32?, type: UInt32, flags: UInt32)
    case log(prefix: String?, level: UInt32?, group: UInt16?, snaplen: UInt32?)
    case verdict(Verdict)
    /// An expression fwenforcer does not write (found in a table someone else changed).
    case unknown(String)

    /// The register nft loads values into (NFT_REG_1, a 16-byte register).
    static let register1 = UInt32(NFT_REG_1.rawValue)

    /// The libnftnl expression type name.
    var typeName: String {
        switch self {
        case .meta: return "meta"
        case .payload: return "payload"
        case .cmp: return "cmp"
        case .bitwise: return "bitwise"
        case .lookup: return "lookup"
        case .ct, .ctOriginal: return "ct"
        case .counter: return "counter"
        case .limit: return "limit"
        case .log: return "log"
        case .verdict: return "immediate"
        case .unknown(let name): return name
        }
    }

    /// Writes this expression's attributes into a fresh `nftnl_expr` of `typeName`.
    func configure(_ e: OpaquePointer) {
        switch self {
        case .meta(let key, let register): MetaExpression.configure(e, key: key, register: register)
        case .payload(let base, let offset, let length, let register):
            PayloadExpression.configure(e, base: base, offset: offset, length: length, register: register)
        case .cmp(let op, let register, let data): CmpExpression.configure(e, op: op, register: register, data: data)
        case .bitwise(let register, let length, let mask, let xor):
            BitwiseExpression.configure(e, register: register, length: length, mask: mask, xor: xor)
        case .lookup(let set, let setID, let register): LookupExpression.configure(e, set: set, setID: setID, register: register)
        case .ct(let key, let register): CtExpression.configure(e, key: key, original: false, register: register)
        case .ctOriginal(let key, let register): CtExpression.configure(e, key: key, original: true, register: register)
        case .counter: break
        case .limit(let rate, let unit, let burst, let type, let flags):
            LimitExpression.configure(e, rate: rate, unitSeconds: unit, burst: burst, type: type, flags: flags)
        case .log(let prefix, let level, let group, let snaplen):
            LogExpression.configure(e, prefix: prefix, level: level, group: group, snaplen: snaplen)
        case .verdict(let v): ImmediateExpression.configure(e, verdict: v)
        case .unknown(let name): preconditionFailure("cannot write unknown expression \(name)")
        }
    }

    /// Reads an `nftnl_expr` (from a parsed rule) back into a value.
    static func decode(_ e: OpaquePointer) -> Expression {
        let name = String(cString: nftnl_expr_get_str(e, UInt16(NFTNL_EXPR_NAME)))
        let decoded: Expression?
        switch name {
        case "meta": decoded = MetaExpression.decode(e)
        case "payload": decoded = PayloadExpression.decode(e)
        case "cmp": decoded = CmpExpression.decode(e)
        case "bitwise": decoded = BitwiseExpression.decode(e)
        case "lookup": decoded = LookupExpression.decode(e)
        case "ct": decoded = CtExpression.decode(e)
        case "counter": decoded = .counter
        case "limit": decoded = LimitExpression.decode(e)
        case "log": decoded = LogExpression.decode(e)
        case "immediate": decoded = ImmediateExpression.decode(e)
        default: decoded = nil
        }
        return decoded ?? .unknown(name)
    }

    /// In the style of `nft --debug=netlink`, for messages and test failures.
    var description: String {
        switch self {
        case .meta(let k, let r): return "[ meta load \(k) => reg \(r) ]"
        case .payload(let b, let o, let l, let r): return "[ payload load \(l)b @ \(b) + \(o) => reg \(r) ]"
        case .cmp(let op, let r, let d): return "[ cmp \(op) reg \(r) \(d.hex) ]"
        case .bitwise(let r, let l, let m, let x): return "[ bitwise reg \(r) = (reg \(r) & \(m.hex)) ^ \(x.hex) len \(l) ]"
        case .lookup(let s, let id, let r): return "[ lookup reg \(r) set \(s) id \(id) ]"
        case .ct(let k, let r): return "[ ct load \(k) => reg \(r) ]"
        case .ctOriginal(let k, let r): return "[ ct load \(k) => reg \(r) , dir original ]"
        case .counter: return "[ counter ]"
        case .limit(let rate, let unit, let burst, let type, let flags):
            return "[ limit rate \(rate)/\(unit)s burst \(burst.map(String.init) ?? "-") type \(type) flags \(flags) ]"
        case .log(let p, let l, let g, let s):
            return "[ log prefix \(p ?? "-") level \(l.map(String.init) ?? "-") group \(g.map(String.init) ?? "-") snaplen \(s.map(String.init) ?? "-") ]"
        case .verdict(let v): return "[ immediate reg 0 \(v.rawValue) ]"
        case .unknown(let n): return "[ \(n) ? ]"
        }
    }
}

extension Array where Element == UInt8 {
    var hex: String { "0x" + map { String($0, radix: 16).leftPadded(2) }.joined() }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// The bytes of a binary expression attribute (cmp data, bitwise mask), copied out of libnftnl.
func expressionData(_ e: OpaquePointer, _ attribute: Int) -> [UInt8]? {
    guard nftnl_expr_is_set(e, UInt16(attribute)) else { return nil }
    var length: UInt32 = 0
    guard let p = nftnl_expr_get(e, UInt16(attribute), &length) else { return nil }
    return Array(UnsafeRawBufferPointer(start: p, count: Int(length)))
}

func expressionU32(_ e: OpaquePointer, _ attribute: Int) -> UInt32? {
    nftnl_expr_is_set(e, UInt16(attribute)) ? nftnl_expr_get_u32(e, UInt16(attribute)) : nil
}

import CNftables

/// nftnl userdata: the opaque bytes the kernel stores with a rule, set or element for userspace
/// (type-length-value, one byte each). nft keeps rule comments and set key byte order there and
/// needs them to print a rule or set readably; fwenforcer writes exactly what nft writes.
struct Userdata {
    private(set) var bytes: [UInt8] = []

    init() {}

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func put(_ type: Int, _ value: [UInt8]) {
        precondition(value.count <= 255, "userdata values are at most 255 bytes")
        bytes.append(UInt8(type))
        bytes.append(UInt8(value.count))
        bytes += value
    }

    /// A host-order u32, as nftnl_udata_put_u32 writes it.
    mutating func putU32(_ type: Int, _ value: UInt32) {
        put(type, withUnsafeBytes(of: value) { Array($0) })
    }

    /// A NUL-terminated string, as nftnl_udata_put_strz writes it.
    mutating func putString(_ type: Int, _ value: String) {
        put(type, Array(value.utf8) + [0])
    }

    mutating func putNested(_ type: Int, _ inner: Userdata) {
        put(type, inner.bytes)
    }

    /// The top-level entries; nil when the bytes do not parse.
    var entries: [(type: Int, value: ArraySlice<UInt8>)]? {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var i = 0
        while i < bytes.count {
            guard i + 2 <= bytes.count else { return nil }
            let t = Int(bytes[i]), n = Int(bytes[i + 1])
            guard i + 2 + n <= bytes.count else { return nil }
            out.append((t, bytes[(i + 2)..<(i + 2 + n)]))
            i += 2 + n
        }
        return out
    }

    func string(_ type: Int) -> String? {
        guard let v = entries?.first(where: { $0.type == type })?.value else { return nil }
        return String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// nft's limit for comments (NFTNL_UDATA_COMMENT_MAXLEN).
    static let commentMaxLength = 128

    // Rule userdata.
    static func rule(comment: String?) -> Userdata? {
        guard let comment else { return nil }
        var u = Userdata()
        u.putString(Int(NFTNL_UDATA_RULE_COMMENT.rawValue), comment)
        return u
    }

    var ruleComment: String? { string(Int(NFTNL_UDATA_RULE_COMMENT.rawValue)) }

    // Set userdata. nft's byte order values (enum byteorder): 2 is big endian.
    static let byteOrderBigEndian: UInt32 = 2

    static func namedSet(comment: String?) -> Userdata {
        var u = Userdata()
        u.putU32(Int(NFTNL_UDATA_SET_KEYBYTEORDER.rawValue), byteOrderBigEndian)
        if let comment { u.putString(Int(NFTNL_UDATA_SET_COMMENT.rawValue), comment) }
        return u
    }

    var setComment: String? { string(Int(NFTNL_UDATA_SET_COMMENT.rawValue)) }

    /// An element's userdata holding only nft's element flags (the half-open-range marker).
    static func elementFlags(_ flags: UInt32) -> Userdata {
        var u = Userdata()
        u.putU32(Int(NFTNL_UDATA_SET_ELEM_FLAGS.rawValue), flags)
        return u
    }
}

/// The parsers of outside bytes, one entry point each, for the coverage-guided fuzzer
/// (`make fuzz`, fuzz/README.md) and for the test that replays the committed corpus. Each takes
/// the bytes as they arrive from outside and must return, whatever they are: a trap here is a bug
/// in the parser. SPI, not API: `@_spi(Fuzzing) import Enforcer`.
@_spi(Fuzzing) public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A config file (`Config.load`'s rule: UTF-8 or refused), parsed and validated with its
    /// source map; the same text parsed as a catalog file too, the other TOML file the daemon reads.
    case config
    /// A table's read-back: the kernel's chain, set, element and rule dump replies (`TableDump`).
    case netlinkDump = "netlink-dump"
    /// An nfnetlink_log datagram (`NflogWire`), each packet's headers (`PacketHeaders`), the
    /// sequence numbering and the ACK reader of the same socket.
    case nflog

    public func run(_ bytes: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .config: Self.config(bytes)
        case .netlinkDump: Self.netlinkDump(ArraySlice(bytes))
        case .nflog: Self.nflog(ArraySlice(bytes))
        }
    }

    private static func config(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return }
        // The catalog is given, not looked up: `catalog = "/dev/zero"` would read from the disk.
        let catalog = try? Catalog.load(text.firstRange(ofBytes: "cloudify") != nil ? "cloudify" : "cloudcenter")
        _ = try? Config.parse(text: text, file: "fuzz.conf", catalogOverride: catalog)
        _ = try? Catalog.parse(text: text, file: "fuzz-catalog.toml")
    }

    private static func netlinkDump(_ bytes: ArraySlice<UInt8>) {
        guard let dump = try? TableDump(messages: bytes) else { return }
        _ = try? dump.ruleset(table: "fwenforcer")
    }

    private static func nflog(_ bytes: ArraySlice<UInt8>) {
        var numbering = NflogSequence()
        NflogWire.forEachPacket(in: bytes) { packet in
            numbering.note(packet.sequence)
            _ = packet.headers
        }
        _ = NflogWire.acknowledgement(in: bytes, sequence: 1)
    }
}

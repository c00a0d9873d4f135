import CNftables
import Glibc
import SystemPackage

/// NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to the netlink socket that created it; the
/// kernel refuses every change to it (EPERM) from any other socket, and deletes it when that
/// socket closes, unless it also has the flag below.
let tableFlagOwner = UInt32(NFT_TABLE_F_OWNER.rawValue)
/// NFT_TABLE_F_PERSIST (Linux 6.9; not in this system's headers): when the owning socket closes,
/// the table stays, orphaned (no owner), and a later socket may adopt it by setting
/// NFT_TABLE_F_OWNER on it. The kernel refuses to set or clear this flag on an existing table.
let tableFlagPersist: UInt32 = 0x4

/// How fwenforcer's table relates to the netlink socket that writes it (`[enforce] owner`).
public enum TableOwnership: Sendable, Hashable {
    /// An ordinary table: any process with CAP_NET_ADMIN may change or delete it (the default).
    case shared
    /// Owned by the daemon's long-lived socket and persistent: while the daemon runs, no other
    /// process can change, flush or delete it; when the daemon exits (or is killed) the table
    /// stays in force, orphaned, and the next daemon adopts it.
    case owned

    var flags: UInt32 { self == .owned ? tableFlagOwner | tableFlagPersist : 0 }
}

/// What `claim(table:)` found and did.
public enum OwnershipClaim: Sendable, Hashable, CustomStringConvertible {
    /// No table yet: the first apply creates it owned (the kernel accepts the flags).
    case willCreate
    /// An orphaned persistent table (its owner exited) is now owned by this socket.
    case adopted
    /// A shared table from before `owner = true` was replaced, with the same contents, by an owned
    /// one in one batch (the kernel does not let NFT_TABLE_F_PERSIST be added to a table).
    case recreated

    public var description: String {
        switch self {
        case .willCreate: return "owned table: none yet, the first apply creates it owned by this daemon"
        case .adopted: return "owned table: adopted the orphaned table (its previous owner exited)"
        case .recreated: return "owned table: the shared table was replaced by an owned one with the same contents"
        }
    }
}

/// Who may change the table, as `status` reports it.
public enum TableOwnerState: Sendable, Hashable, CustomStringConvertible {
    /// Any process with CAP_NET_ADMIN.
    case shared
    /// Only the process whose netlink socket has this port id (usually its pid).
    case owned(portID: UInt32)
    /// Persistent, and its owner has exited: anyone may change it until a daemon adopts it.
    case orphaned

    public var description: String {
        switch self {
        case .shared: return "shared (any process may change it)"
        case .owned(let port): return "owned by netlink port \(port) (usually the pid of fwenforcerd); only it may change the table"
        case .orphaned: return "orphaned (persistent, its owner exited): any process may change it until fwenforcerd adopts it"
        }
    }
}

/// The table's flags and owner, from a GETTABLE reply.
struct TableState {
    var flags: UInt32
    /// The owning socket's netlink port id, when the table has an owner.
    var owner: UInt32?

    var isOrphan: Bool { flags & (tableFlagOwner | tableFlagPersist) == tableFlagPersist }

    var ownerState: TableOwnerState {
        if isOrphan { return .orphaned }
        if flags & tableFlagOwner != 0, let owner { return .owned(portID: owner) }
        return .shared
    }
}

extension NetlinkBackend {
    /// Makes the table this backend's own, at daemon start (`tableOwnership` must be `.owned`):
    /// adopts an orphaned one, replaces a shared one by an owned one with the same contents, or
    /// checks that the kernel accepts the flags for the table the first apply will create.
    /// Refuses a table another live socket owns (another fwenforcerd, or a tool), and explains a
    /// kernel without the flags.
    public func claim(table: String) throws(BackendError) -> OwnershipClaim {
        precondition(tableOwnership == .owned, "claim(table:) is for an owned table")
        do throws(BackendError) {
            guard let state = try tableState(table) else {
                try check(Transaction(table: table, operations: [.addTable]))
                return .willCreate
            }
            if let owner = state.owner, state.flags & tableFlagOwner != 0 {
                throw BackendError.rejected([Rejection(object: "table inet \(table)", code: .notPermitted, kernelMessage:
                    "owned by the netlink socket of another process (port id \(owner), usually its pid): another fwenforcerd? "
                    + "Only that process can change or delete it until it exits")])
            }
            // Only a table fwenforcer may take at all (marked, or adoptable: `TableClaim`).
            let snapshot = try read(table: table)
            if case .refused(let why) = TableClaim(snapshot, table: table) { throw BackendError.notOwned(why) }
            if state.isOrphan {
                _ = try apply(Transaction(table: table, operations: [.addTable]))
                return .adopted
            }
            guard let ruleset = snapshot.ruleset else { return .willCreate }
            _ = try apply(Diff.replacement(ruleset, existing: true, generation: snapshot.generation))
            return .recreated
        } catch .rejected(let rejections) where rejections.contains(where: { $0.code == .notSupported }) {
            throw .rejected([Rejection(object: "table inet \(table)", code: .notSupported, kernelMessage:
                "[enforce] owner = true needs the table flags NFT_TABLE_F_OWNER and NFT_TABLE_F_PERSIST (Linux 6.9 or later); "
                + "this kernel (\(kernelRelease())) refuses them: set owner = false")])
        }
    }

    /// Who may change the table; nil when it does not exist.
    public func ownerState(of table: String) throws(BackendError) -> TableOwnerState? {
        try tableState(table)?.ownerState
    }

    /// GETTABLE: the table's flags and owner; nil when it does not exist.
    func tableState(_ table: String) throws(BackendError) -> TableState? {
        var interrupted = false
        let replies: [ReceivedMessage]
        do throws(BackendError) {
            replies = try dump(NFT_MSG_GETTABLE, attributes: [], interrupted: &interrupted)
        } catch .system(_, .noSuchFileOrDirectory) {
            return nil
        }
        for m in replies {
            let t = NftnlTable()
            let ok = m.bytes.withUnsafeBytes { raw in
                nftnl_table_nlmsg_parse(raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), t.pointer) >= 0
            }
            guard ok, nftnl_table_is_set(t.pointer, UInt16(NFTNL_TABLE_NAME.rawValue)),
                  String(cString: nftnl_table_get_str(t.pointer, UInt16(NFTNL_TABLE_NAME.rawValue))) == table else { continue }
            let owner = nftnl_table_is_set(t.pointer, UInt16(NFTNL_TABLE_OWNER.rawValue))
                ? nftnl_table_get_u32(t.pointer, UInt16(NFTNL_TABLE_OWNER.rawValue)) : nil
            return TableState(flags: nftnl_table_get_u32(t.pointer, UInt16(NFTNL_TABLE_FLAGS.rawValue)), owner: owner)
        }
        return nil
    }
}

/// `uname -r`, for messages about kernel features.
func kernelRelease() -> String {
    var u = utsname()
    guard uname(&u) == 0 else { return "unknown release" }
    return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

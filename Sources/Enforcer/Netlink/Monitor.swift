import CNftables
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A commit to the nftables ruleset, as the kernel announces it on `NFNLGRP_NFTABLES`.
public struct RulesetCommit: Sendable, Hashable {
    /// The ruleset generation the commit produced.
    public var generation: UInt32
    /// The committing process, as the kernel names it (`NFTA_GEN_PROC_PID`/`_NAME`): its pid in
    /// the kernel's initial PID namespace, so not comparable with `getpid()` inside a container.
    public var pid: Int32
    public var process: String
    /// True when the commit created, changed or deleted anything in the watched table.
    public var touchedTable: Bool
    /// The netlink port id of the socket that sent the batch (the notification's `nlmsg_pid`).
    public var portID: UInt32 = 0
    /// True when one of fwenforcer's own sockets sent the batch (`NetlinkMonitor.ownPortIDs`).
    public var own: Bool
}

/// What the monitor saw since the last drain.
public enum MonitorEvent: Sendable, Hashable {
    case commit(RulesetCommit)
    /// The socket's receive queue overflowed (ENOBUFS): events were lost, so anything may have
    /// changed.
    case overflow
}

/// Listens to nftables ruleset events (the netlink multicast group `NFNLGRP_NFTABLES`) and reports
/// each commit, telling fwenforcer's own commits from other writers' and whether a commit touched
/// the watched table. The daemon polls `fileDescriptor` in its event loop; the socket never blocks.
///
/// The kernel sends one message per object changed and then a `NEWGEN` message closing the batch,
/// so object messages are collected until their `NEWGEN`.
public final class NetlinkMonitor {
    private let socket: NetlinkSocket
    /// The table whose changes count as drift; the daemon moves it when `[enforce] table` changes.
    public var table: String
    /// Port ids of the sockets whose commits are fwenforcer's own (the backend's). Commits are
    /// told apart by the committing socket, never by pid: the kernel reports the pid as seen from
    /// its initial PID namespace, which differs from `getpid()` in any container.
    public var ownPortIDs: Set<UInt32> = []
    private var touched = false
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4)

    /// Subscribes to ruleset events for `table` (an `inet` table).
    public init(table: String, receiveBuffer: Int = 8 << 20) throws(BackendError) {
        self.table = table
        socket = try NetlinkSocket(groups: UInt32(1) << (UInt32(NFNLGRP_NFTABLES.rawValue) - 1))
        // A large batch (a full apply of 100,000 elements) announces every element; a big queue
        // makes an overflow, and the full re-read it forces, rarer. Where the buffer cannot be
        // forced (containers), what SO_RCVBUF allows is kept.
        _ = try? socket.ensureReceiveBuffer(receiveBuffer)
    }

    deinit {
        assert(!socket.isOpen, "leak of an open NetlinkMonitor: call close()")
        buffer.deallocate()
    }

    /// The socket to wait on for readability.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    public func close() { socket.close() }

    /// Reads pending events without blocking, up to `budget`: a writer committing without pause
    /// must not keep the event loop here. What is left is read on the next turn (a batch's object
    /// messages and its NEWGEN may be split between turns; `touched` carries over).
    public func drain(budget: DrainBudget = .perTurn) throws(BackendError) -> [MonitorEvent] {
        var events: [MonitorEvent] = []
        var meter = DrainBudget.Meter(budget)
        while true {
            let n: Int?
            do {
                n = try socket.receive(into: buffer, wait: false)
            } catch .system(_, .noBufferSpace) {
                touched = false
                events.append(.overflow)
                if !meter.allowsAnother() { return events }
                continue
            }
            guard let n, n > 0 else { return events }
            events += parse(Array(buffer.prefix(n))[...])
            if !meter.allowsAnother() { return events }
        }
    }

    /// Drains the pending events and tells whether the commits after generation `from` up to `to`
    /// all left the watched table alone, every one of them seen. A commit by another writer that
    /// touched the table after `from` (up to `to` or later) answers no, so a read taken meanwhile is
    /// taken again and includes it: nothing drained here hides drift. Earlier commits are already
    /// part of what a read starting at `from` sees.
    public func drainCheckingTable(after from: UInt32, upTo to: UInt32) -> (untouched: Bool, events: [MonitorEvent]) {
        func after(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
        var seen = from
        var untouched = true
        var all: [MonitorEvent] = []
        // `drain` stops at its budget: read on until the commit at `to` is seen (a bounded number
        // of times; the events of commits up to `to` are queued already).
        for _ in 0..<64 where !after(seen, to) && seen != to {
            guard let events = try? drain(), !events.isEmpty else { break }
            all += events
            for event in events {
                switch event {
                case .overflow: untouched = false
                case .commit(let c):
                    if c.touchedTable && !c.own && after(c.generation, from) { untouched = false }
                    if after(c.generation, seen) { seen = c.generation }
                }
            }
        }
        return (untouched && !after(to, seen), all)
    }

    /// Parses one datagram of netlink messages into commits (exposed for tests with recorded bytes).
    func parse(_ data: ArraySlice<UInt8>) -> [MonitorEvent] {
        var events: [MonitorEvent] = []
        var offset = data.startIndex
        while offset + 16 <= data.endIndex {
            let length = Int(data.u32le(at: offset))
            let type = data.u16le(at: offset + 4)
            guard length >= 16, offset + length <= data.endIndex else { break }
            let message = data[offset..<(offset + length)]
            offset += align4(length)
            guard Int(type >> 8) == NFNL_SUBSYS_NFTABLES, length >= 20 else { continue }
            let kind = UInt32(type & 0xff)
            let senderPort = data.u32le(at: message.startIndex + 12)
            let family = message[message.startIndex + 16]
            let attributes = Self.attributes(message.dropFirst(20))
            if kind == NFT_MSG_NEWGEN.rawValue {
                let generation = attributes[UInt16(NFTA_GEN_ID.rawValue)].map { $0.u32be(at: $0.startIndex) } ?? 0
                let pid = attributes[UInt16(NFTA_GEN_PROC_PID.rawValue)].map { Int32(bitPattern: $0.u32be(at: $0.startIndex)) } ?? 0
                let name = attributes[UInt16(NFTA_GEN_PROC_NAME.rawValue)].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } ?? ""
                events.append(.commit(RulesetCommit(generation: generation, pid: pid, process: name,
                                                     touchedTable: touched, portID: senderPort,
                                                     own: ownPortIDs.contains(senderPort) && senderPort != 0)))
                touched = false
            } else if Self.tableObjectMessages.contains(kind), family == UInt8(NFPROTO_INET) {
                // Every object message names its table in attribute 1 (NFTA_TABLE_NAME,
                // NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, ...).
                if let name = attributes[1], String(decoding: name.prefix { $0 != 0 }, as: UTF8.self) == table {
                    touched = true
                }
            }
        }
        return events
    }

    static let tableObjectMessages: Set<UInt32> = [
        NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE,
        NFT_MSG_NEWSET, NFT_MSG_DELSET, NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM, NFT_MSG_NEWOBJ, NFT_MSG_DELOBJ,
        NFT_MSG_NEWFLOWTABLE, NFT_MSG_DELFLOWTABLE,
    ].reduce(into: Set<UInt32>()) { $0.insert($1.rawValue) }

    /// Top-level netlink attributes by type (the nested/byte-order flag bits masked off).
    static func attributes(_ data: ArraySlice<UInt8>) -> [UInt16: ArraySlice<UInt8>] {
        var out: [UInt16: ArraySlice<UInt8>] = [:]
        var offset = data.startIndex
        while offset + 4 <= data.endIndex {
            let length = Int(data.u16le(at: offset))
            let type = data.u16le(at: offset + 2) & 0x3fff
            guard length >= 4, offset + length <= data.endIndex else { break }
            out[type] = data[(offset + 4)..<(offset + length)]
            offset += align4(length)
        }
        return out
    }
}

private func align4(_ n: Int) -> Int { (n + 3) & ~3 }

extension ArraySlice where Element == UInt8 {
    func u16le(at i: Int) -> UInt16 { UInt16(self[i]) | UInt16(self[i + 1]) << 8 }
    func u32le(at i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[i + $1]) << (8 * $1) } }
    func u32be(at i: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(self[i + $1]) } }
}

import CNftables
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Receives the packets an nftables `log group N` statement hands to nfnetlink_log, for audit
/// mode. It binds one group in the current network namespace, asks for a copy of each packet's
/// first `copyRange` bytes, and numbers messages (`NFULNL_CFG_F_SEQ`) so packets the kernel could
/// not deliver (a full socket queue under a flood) are counted rather than silently missing.
///
/// No `NFULNL_CFG_CMD_PF_BIND` is sent: since Linux 3.17 a `log group` rule finds nfnetlink_log
/// by type, and binding a family would make nfnetlink_log the namespace's default logger for it
/// (changing where other tools' plain `LOG` rules go).
///
/// The daemon polls `fileDescriptor` in its event loop; `drain` never blocks, and returns after a
/// bounded amount of work (``DrainBudget``) however fast packets arrive.
public final class NflogReceiver {
    private let socket: NetlinkSocket
    public let group: UInt16
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 4)
    private var numbering = NflogSequence()
    /// Packets the kernel numbered but could not deliver (gaps in the sequence numbers).
    public var lostPackets: UInt64 { numbering.lost }
    /// Times the socket's receive queue overflowed (ENOBUFS).
    public private(set) var overflows: UInt64 = 0

    /// Binds `group`. EPERM from the kernel means another socket (ulogd, a second daemon) holds the
    /// group in this network namespace; that is reported by name.
    public init(group: UInt16, copyRange: UInt32, receiveBuffer: Int = 4 << 20) throws(BackendError) {
        self.group = group
        socket = try NetlinkSocket()
        do throws(BackendError) {
            // Room for a burst: when the queue is full the kernel drops messages (counted by sequence).
            _ = try? socket.ensureReceiveBuffer(receiveBuffer)
            typealias C = NflogWire.Config
            try configure([(C.command, [C.bind])])
            try configure([
                (C.mode, NflogWire.be32(copyRange) + [C.copyPacket, 0]),
                (C.flags, NflogWire.be16(C.flagSequence)),
                // Batch up to 64 packets or 100 ms per message under load: fewer wake-ups, and a
                // lone packet still arrives within 0.1 s.
                (C.bufferSize, NflogWire.be32(64 << 10)),
                (C.queueThreshold, NflogWire.be32(64)),
                (C.timeout, NflogWire.be32(10)),
            ])
        } catch {
            socket.close()
            if case .system(_, .notPermitted) = error {
                throw .system(call: "binding nfnetlink_log group \(group) (another process, ulogd?, holds it in this network namespace; choose another [enforce] audit_group)", .notPermitted)
            }
            throw error
        }
    }

    deinit {
        assert(!socket.isOpen, "leak of an open NflogReceiver: call close()")
        buffer.deallocate()
    }

    /// The socket to wait on for readability.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// Closes the socket; the kernel unbinds the group with it.
    public func close() { socket.close() }

    /// Sends one config request and waits for its ACK. Packets can only arrive after the bind
    /// succeeds, so the reply read here is the ACK (or the error).
    private func configure(_ attributes: [(UInt16, [UInt8])]) throws(BackendError) {
        let sequence = socket.reserveSequences(1)
        try socket.send(NflogWire.configRequest(group: group, sequence: sequence, attributes: attributes))
        while true {
            guard let n = try socket.receive(into: buffer, wait: true) else { continue }
            let data = Array(buffer.prefix(n))[...]
            guard let code = NflogWire.acknowledgement(in: data, sequence: sequence) else { continue }
            if code == 0 { return }
            throw .system(call: "nfnetlink_log config (group \(group))", Errno(rawValue: -code))
        }
    }

    /// Reads pending packets without blocking, up to `budget`, and hands each to `body`. Returns
    /// true when the budget ran out first (more may be queued; the descriptor stays readable).
    @discardableResult
    public func drain(budget: DrainBudget = .perTurn, _ body: (NflogPacket) -> Void) -> Bool {
        var meter = DrainBudget.Meter(budget)
        while true {
            let n: Int?
            do {
                n = try socket.receive(into: buffer, wait: false)
            } catch .system(_, .noBufferSpace) {
                overflows += 1
                if !meter.allowsAnother() { return true }
                continue
            } catch {
                return false
            }
            guard let n, n > 0 else { return false }
            NflogWire.forEachPacket(in: Array(buffer.prefix(n))[...]) { packet in
                numbering.note(packet.sequence)
                body(packet)
            }
            if !meter.allowsAnother() { return true }
        }
    }
}

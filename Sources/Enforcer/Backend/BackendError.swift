import SystemPackage

/// Why a backend refused or could not carry out a read or a transaction, written for the operator.
///
/// A `rejected` transaction changed nothing: the kernel (and the fake) apply all of a batch or none
/// of it. The other cases are about the channel to the kernel, not about the ruleset.
public enum BackendError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kernel refused the transaction; each rejection names the object that caused it.
    case rejected([Rejection])
    /// Compare-and-swap lost: another writer committed after the snapshot the transaction was
    /// computed from. Re-read and recompute.
    case generationChanged(expected: UInt32)
    /// A system call failed (`socket`, `sendmsg`, `setsockopt` ...).
    case system(call: String, Errno)
    /// The batch is larger than the socket may send in one `sendmsg`, even after raising the buffer.
    case batchTooLarge(bytes: Int, sendBuffer: Int)
    /// The table holds something fwenforcer's model cannot express (written by someone else);
    /// a full replace repairs it.
    case unrepresentable(String)
    /// A table of the configured name exists that fwenforcer did not create: it is never adopted,
    /// changed or deleted. The text names the table and what it holds.
    case notOwned(String)
    /// The kernel's answer broke the netlink protocol as fwenforcer understands it.
    case protocolViolation(String)
    /// The batch was sent but its outcome could not be confirmed (acknowledgements were lost);
    /// the ruleset must be read again before anything else is decided.
    case outcomeUnknown(String)

    public var description: String {
        switch self {
        case .rejected(let rejections):
            let shown = rejections.prefix(10).map(\.description)
            let more = rejections.count > shown.count ? ["and \(rejections.count - shown.count) more"] : []
            return "the kernel rejected the transaction, nothing was changed: " + (shown + more).joined(separator: "; ")
        case .generationChanged(let expected):
            return "the ruleset was changed by another writer after it was read (generation \(expected)); read it again"
        case .system(let call, let code):
            return "\(call): \(code)"
        case .batchTooLarge(let bytes, let buffer):
            return "a batch of \(bytes) bytes does not fit the netlink send buffer (\(buffer) bytes); "
                + "raise net.core.wmem_max or grant CAP_NET_ADMIN so the buffer can be forced"
        case .unrepresentable(let what):
            return "the table holds something fwenforcer did not write: \(what)"
        case .notOwned(let what):
            return what
        case .protocolViolation(let what):
            return "unexpected netlink reply: \(what)"
        case .outcomeUnknown(let what):
            return "the outcome of the batch is unknown: \(what)"
        }
    }
}

/// One object the kernel refused, with the reason.
public struct Rejection: Hashable, Sendable, CustomStringConvertible {
    /// The object in nft words: `set CCM_v4 element 198.18.0.7`, `chain input`,
    /// `rule "ip saddr @X_v4 accept" in chain input`.
    public var object: String
    public var code: Errno
    /// The kernel's extended-ACK message, when it gave one.
    public var kernelMessage: String?

    public init(object: String, code: Errno, kernelMessage: String? = nil) {
        self.object = object
        self.code = code
        self.kernelMessage = kernelMessage
    }

    /// `set CCM_v4 element 198.18.0.7: File exists`.
    public var description: String {
        var text = "\(object): \(code)"
        if let kernelMessage, !kernelMessage.isEmpty { text += " (\(kernelMessage))" }
        return text
    }
}

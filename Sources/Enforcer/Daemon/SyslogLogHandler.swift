#if os(Linux)
import Glibc
import Logging

/// A swift-log handler that sends each event to syslog(3) (`/dev/log`, which journald reads on a
/// systemd host), with facility LOG_DAEMON.
///
/// For processes whose stderr nobody reads: the detached waiter of `apply --confirm-within` outlives
/// the operator's terminal, and its rollback must still reach the journal. Without a syslog socket
/// the events are dropped silently by the C library, so it is paired with a file log.
public struct SyslogLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    /// Opens the syslog connection once per process with `identifier` (the program name journald shows).
    public init(label: String, identifier: String = "fwenforcerd") {
        self.label = label
        Self.open(identifier)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let priority = Int32(JournalLogHandler.syslogPriority(event.level))
        let text = JournalLogHandler.escaped(event.message.description)
        // "%s": the message is data, never a format string.
        Self.withMessage(text) { vsyslog(LOG_DAEMON | priority, "%s", $0) }
    }

    /// `text` as the one argument of a `%s` format: a C string. A Swift `String` is no C vararg of
    /// its own; where Foundation is linked it passes as an object pointer, and syslog got the bytes
    /// of that object instead of the message.
    static func withMessage<Result>(_ text: String, _ body: (CVaListPointer) -> Result) -> Result {
        text.withCString { message in withVaList([message], body) }
    }

    /// openlog keeps the identifier pointer, so it lives for the rest of the process.
    private static func open(_ identifier: String) {
        struct Once { nonisolated(unsafe) static var identifier: UnsafeMutablePointer<CChar>? }
        guard Once.identifier == nil else { return }
        Once.identifier = strdup(identifier)
        openlog(Once.identifier, LOG_PID | LOG_NDELAY, LOG_DAEMON)
    }
}
#endif

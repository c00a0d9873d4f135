#if os(Linux)
import Glibc
import Logging

/// A swift-log handler that writes one line per event to stderr, in the form journald reads best
/// when stderr is connected to the journal, and timestamped for a human otherwise.
///
/// - Journal (`$JOURNAL_STREAM` names the device and inode of stderr, as systemd sets it):
///   `<6>label: message key=value`. journald reads the `<N>` prefix as the syslog priority and adds
///   its own timestamp and the program name, so neither is written (nor a label equal to the program
///   name: `fwenforcerd[42]: fwenforcerd: …` says it twice).
/// - Otherwise: `2026-11-21T05:57:00.123Z info label: message key=value`, in UTC.
///
/// `$JOURNAL_STREAM` is compared with stderr itself, as systemd.exec(5) advises: a child whose stderr
/// was redirected elsewhere inherits the variable but must not write priority prefixes.
///
/// Each event is one `write(2)`, so lines from different threads never interleave. Newlines and
/// other control characters in the message and metadata are escaped, because journald starts a new
/// entry (with the default priority) at each newline.
public struct JournalLogHandler: LogHandler {
    public enum Format: Sendable, Equatable {
        /// `<N>` syslog priority prefix, no timestamp.
        case journal
        /// UTC timestamp and level name.
        case human
    }

    public let label: String
    public let format: Format
    /// Whether lines carry `label: `.
    public let showsLabel: Bool
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let descriptor: Int32

    /// A handler writing to `descriptor` (stderr by default) in `format`.
    public init(
        label: String, format: Format, showsLabel: Bool = true, descriptor: Int32 = STDERR_FILENO,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.format = format
        self.showsLabel = showsLabel
        self.descriptor = descriptor
        self.metadataProvider = metadataProvider
    }

    /// A handler for stderr whose format follows `$JOURNAL_STREAM`; use it with
    /// `LoggingSystem.bootstrap { JournalLogHandler.standardError(label: $0) }`.
    public static func standardError(
        label: String, environment: [String: String]? = nil, metadataProvider: Logger.MetadataProvider? = nil
    ) -> JournalLogHandler {
        let environment = environment ?? processEnvironment()
        let format: Format = isJournalStream(environment["JOURNAL_STREAM"], descriptor: STDERR_FILENO) ? .journal : .human
        let programName = CommandLine.arguments.first?.split(separator: "/").last.map(String.init)
        return JournalLogHandler(
            label: label, format: format, showsLabel: format == .human || label != programName,
            metadataProvider: metadataProvider)
    }

    /// Whether `value` (`$JOURNAL_STREAM`, "device:inode" in decimal) names the file `descriptor` is open on.
    static func isJournalStream(_ value: String?, descriptor: Int32) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = render(event, now: Self.realtimeNow())
        line.append("\n")
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            }
            if written > 0 {
                offset += written
            } else if written == -1 && errno == EINTR {
                continue
            } else {
                // Nowhere left to report a failing stderr.
                return
            }
        }
    }

    /// The line for `event`, without its newline. `now` is (seconds, nanoseconds) since the epoch.
    func render(_ event: LogEvent, now: (seconds: Int, nanoseconds: Int)) -> String {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let call = event.metadata { merged.merge(call) { _, new in new } }
        var line: String
        switch format {
        case .journal:
            line = "<\(Self.syslogPriority(event.level))>"
        case .human:
            line = Self.timestamp(now) + " " + event.level.rawValue + " "
        }
        if showsLabel { line += Self.escaped(label) + ": " }
        line += Self.escaped(event.message.description)
        for key in merged.keys.sorted() {
            line += " " + Self.escaped(key) + "=" + Self.quoted(Self.text(of: merged[key]!))
        }
        if let error = event.error {
            line += " error=" + Self.quoted(String(describing: error))
        }
        return line
    }

    /// syslog(3) priorities: journald maps them to its levels.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7  // LOG_DEBUG
        case .info: 6  // LOG_INFO
        case .notice: 5  // LOG_NOTICE
        case .warning: 4  // LOG_WARNING
        case .error: 3  // LOG_ERR
        case .critical: 2  // LOG_CRIT
        }
    }

    private static func text(of value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map { text(of: $0) }.joined(separator: ",") + "]"
        case .dictionary(let dictionary):
            "{" + dictionary.keys.sorted().map { "\($0)=\(text(of: dictionary[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// Control characters as escapes, so one event stays one line.
    static func escaped(_ text: String) -> String {
        escaping(text, quoting: false)
    }

    /// A metadata value as written after `key=`: bare when it is one plain word, else double-quoted
    /// with `"` and `\` escaped.
    static func quoted(_ text: String) -> String {
        let plain = !text.isEmpty && !text.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || isControl($0)
        }
        return plain ? text : "\"" + escaping(text, quoting: true) + "\""
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7F
    }

    private static func escaping(_ text: String, quoting: Bool) -> String {
        if !quoting && !text.unicodeScalars.contains(where: isControl) { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\"" where quoting: result += "\\\""
            case "\\" where quoting: result += "\\\\"
            case _ where isControl(scalar):
                result += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func realtimeNow() -> (seconds: Int, nanoseconds: Int) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (now.tv_sec, now.tv_nsec)
    }

    /// RFC 3339 UTC with milliseconds: 2026-11-21T05:57:00.123Z.
    static func timestamp(_ now: (seconds: Int, nanoseconds: Int)) -> String {
        var seconds = time_t(now.seconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
            + "T" + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
            + "." + pad(Int32(now.nanoseconds / 1_000_000), 3) + "Z"
    }
}
#endif

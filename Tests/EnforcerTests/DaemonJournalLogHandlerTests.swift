#if os(Linux)
import Glibc
import Logging
import Testing
@testable import Enforcer

@Suite struct DaemonJournalLogHandlerTests {
    /// A pipe whose read end collects what a handler wrote to the write end.
    final class Capture {
        let readEnd: Int32
        let writeEnd: Int32

        init() throws {
            var ends: [Int32] = [0, 0]
            try daemonCheck(pipe(&ends), "pipe")
            readEnd = ends[0]
            writeEnd = ends[1]
        }

        func text() -> String {
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while daemonWaitReadable(readEnd, timeout: .zero) {
                let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                result += chunk[0..<count]
            }
            return String(decoding: result, as: UTF8.self)
        }

        /// "dev:inode" of the pipe, as systemd puts it in JOURNAL_STREAM for the stream it connects.
        var journalStream: String {
            var info = stat()
            fstat(writeEnd, &info)
            return "\(info.st_dev):\(info.st_ino)"
        }

        func close() {
            _ = Glibc.close(readEnd)
            _ = Glibc.close(writeEnd)
        }
    }

    @Test func journalLinesCarryThePriorityAndNoTimestamp() throws {
        let capture = try Capture()
        defer { capture.close() }
        var logger = Logger(label: "fwenforcerd") { JournalLogHandler(label: $0, format: .journal, descriptor: capture.writeEnd) }
        logger.logLevel = .trace
        logger[metadataKey: "config"] = "/etc/fwenforcer/fwenforcer.conf"
        logger.info("reconciled", metadata: ["changes": "CCM_v4 +1 -1", "ms": "3"])
        logger.warning("config refused")
        logger.error("apply failed", metadata: ["object": "set CCM_v4"])
        logger.critical("lost the netlink socket")
        logger.notice("reloading")
        logger.debug("woke up")
        logger.trace("epoll")
        #expect(capture.text().split(separator: "\n") == [
            "<6>fwenforcerd: reconciled changes=\"CCM_v4 +1 -1\" config=/etc/fwenforcer/fwenforcer.conf ms=3",
            "<4>fwenforcerd: config refused config=/etc/fwenforcer/fwenforcer.conf",
            "<3>fwenforcerd: apply failed config=/etc/fwenforcer/fwenforcer.conf object=\"set CCM_v4\"",
            "<2>fwenforcerd: lost the netlink socket config=/etc/fwenforcer/fwenforcer.conf",
            "<5>fwenforcerd: reloading config=/etc/fwenforcer/fwenforcer.conf",
            "<7>fwenforcerd: woke up config=/etc/fwenforcer/fwenforcer.conf",
            "<7>fwenforcerd: epoll config=/etc/fwenforcer/fwenforcer.conf",
        ])
    }

    @Test func humanLinesAreTimestampedInUTC() throws {
        let handler = JournalLogHandler(label: "fwenforcerd", format: .human)
        let event = LogEvent(
            level: .warning, message: "config refused", metadata: ["file": "/etc/x.conf"], source: nil,
            file: #fileID, function: #function, line: #line)
        // 2026-11-21T05:57:00.123Z
        #expect(handler.render(event, now: (1_795_240_620, 123_456_789))
            == "2026-11-21T05:57:00.123Z warning fwenforcerd: config refused file=/etc/x.conf")
        #expect(JournalLogHandler.timestamp((0, 0)) == "1970-01-01T00:00:00.000Z")
    }

    /// One event is one line, whatever the message holds: journald would start a new entry per line.
    @Test func newlinesAndQuotesAreEscaped() {
        let handler = JournalLogHandler(label: "fwenforcerd", format: .journal)
        let event = LogEvent(
            level: .error, message: "invalid config\n  line 3: bad key", metadata: [
                "empty": "", "quote": "say \"hi\"", "path": "C:\\x", "tab": "a\tb", "list": ["a", "b"],
            ], source: nil, file: #fileID, function: #function, line: #line)
        #expect(handler.render(event, now: (0, 0)) == "<3>fwenforcerd: invalid config\\n  line 3: bad key "
            + "empty=\"\" list=[a,b] path=\"C:\\\\x\" quote=\"say \\\"hi\\\"\" tab=\"a\\tb\"")
    }

    @Test func errorsAreAppended() {
        struct Broken: Error, CustomStringConvertible { var description: String { "EPERM on set CCM_v4" } }
        let handler = JournalLogHandler(label: "fwenforcerd", format: .journal)
        var event = LogEvent(
            level: .error, message: "apply failed", metadata: nil, source: nil,
            file: #fileID, function: #function, line: #line)
        event.error = Broken()
        #expect(handler.render(event, now: (0, 0)) == "<3>fwenforcerd: apply failed error=\"EPERM on set CCM_v4\"")
    }

    /// JOURNAL_STREAM must name the descriptor's own stream: a child whose stderr went elsewhere
    /// inherits the variable but must not write priority prefixes.
    @Test func journalStreamIsComparedWithTheDescriptor() throws {
        let capture = try Capture()
        defer { capture.close() }
        #expect(JournalLogHandler.isJournalStream(capture.journalStream, descriptor: capture.writeEnd))
        #expect(!JournalLogHandler.isJournalStream("1:2", descriptor: capture.writeEnd))
        #expect(!JournalLogHandler.isJournalStream(nil, descriptor: capture.writeEnd))
        #expect(!JournalLogHandler.isJournalStream("garbage", descriptor: capture.writeEnd))
        #expect(JournalLogHandler.standardError(label: "x", environment: [:]).format == .human)
        // stderr of this test process is no journal stream either way, but the shape is the same:
        #expect(JournalLogHandler.standardError(label: "x", environment: [:]).showsLabel)
        #expect(JournalLogHandler.standardError(label: "x", environment: ["JOURNAL_STREAM": "1:2"]).format == .human)
    }

    /// journald already records the program name; a label equal to it would repeat it on every line.
    @Test func labelCanBeLeftOut() {
        let handler = JournalLogHandler(label: "fwenforcerd", format: .journal, showsLabel: false)
        let event = LogEvent(
            level: .notice, message: "stopping", metadata: nil, source: nil,
            file: #fileID, function: #function, line: #line)
        #expect(handler.render(event, now: (0, 0)) == "<5>stopping")
    }

    @Test func metadataProviderAndHandlerMetadataMerge() throws {
        let provider = Logger.MetadataProvider { ["generation": "7", "config": "provided"] }
        var handler = JournalLogHandler(label: "fwenforcerd", format: .journal, metadataProvider: provider)
        handler[metadataKey: "config"] = "handler"
        let event = LogEvent(
            level: .info, message: "applied", metadata: ["config": "call"], source: nil,
            file: #fileID, function: #function, line: #line)
        // The call's metadata wins over the provider's, which wins over the handler's.
        #expect(handler.render(event, now: (0, 0)) == "<6>fwenforcerd: applied config=call generation=7")
    }
}
#endif

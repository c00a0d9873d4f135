/// How much one readable handler may read before it returns to the event loop.
///
/// The loop is level-triggered (``EventLoop/watchReadable(_:_:)``): what a handler leaves queued
/// makes its descriptor ready again at once, and the next turn serves signals first. So a handler
/// that stops at its budget loses nothing, and a flood on one socket (audit packets, ruleset
/// events, inotify events) delays a SIGTERM, a timer or a watchdog ping by one budget at most,
/// instead of for as long as the flood lasts.
public struct DrainBudget: Sendable, Equatable {
    /// Datagrams (or `read` calls) per turn.
    public var reads: Int
    /// Wall time per turn, checked after each read.
    public var time: Duration

    public init(reads: Int, time: Duration) {
        precondition(reads > 0 && time > .zero, "a budget must allow one read")
        self.reads = reads
        self.time = time
    }

    /// 64 datagrams (an audit datagram batches up to 64 packets) or 20 ms, whichever ends first:
    /// far below the 200 ms a stop may take, far above what an idle socket needs.
    public static let perTurn = DrainBudget(reads: 64, time: .milliseconds(20))

    /// Counts reads against the budget from the moment it is started.
    struct Meter {
        let budget: DrainBudget
        private let deadline: ContinuousClock.Instant
        private var reads = 0

        init(_ budget: DrainBudget) {
            self.budget = budget
            deadline = ContinuousClock.now.advanced(by: budget.time)
        }

        /// Records one read; true while another read is allowed.
        mutating func allowsAnother() -> Bool {
            reads += 1
            return reads < budget.reads && ContinuousClock.now < deadline
        }
    }
}

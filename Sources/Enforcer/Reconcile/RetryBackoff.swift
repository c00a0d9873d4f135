/// The daemon's wait before it retries a failed reconcile: 1 s after the first failure, doubled
/// after each further one up to 30 s, back to 1 s after a pass that succeeds. A kernel that keeps
/// refusing is retried twice a minute, not in a busy loop; a transient refusal is retried at once.
struct RetryBackoff: Hashable {
    static let first: Duration = .seconds(1)
    static let longest: Duration = .seconds(30)

    /// The wait the next failure schedules.
    private(set) var delay: Duration = first

    /// A pass failed: the wait before its retry; the one after is twice as long (at most `longest`).
    mutating func failed() -> Duration {
        defer { delay = min(delay * 2, Self.longest) }
        return delay
    }

    mutating func succeeded() { delay = Self.first }
}

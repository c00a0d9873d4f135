/// Why a pass runs: named in its log line, and deciding what the pass may do (a provisional
/// window opens only for an operator's change, the backstop stays quiet when nothing changed).
public enum ReconcileReason: Sendable, Hashable, CustomStringConvertible {
    case start
    case configChanged
    case addressesChanged
    case sighup
    case backstop
    case driftRepair
    case retry
    case rollback

    public var description: String {
        switch self {
        case .start: "start"
        case .configChanged: "config changed"
        case .addressesChanged: "interface addresses changed"
        case .sighup: "SIGHUP"
        case .backstop: "backstop"
        case .driftRepair: "drift repair"
        case .retry: "retry"
        case .rollback: "rollback"
        }
    }
}
